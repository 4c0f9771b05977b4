"""Backpropagation by hand: a scalar Value that remembers how it was made.

Every arithmetic operation on Values builds a node of a graph: the result keeps
its inputs and the operation's local derivatives, d(result)/d(each input), as
plain numbers worked out when it runs. backward() visits the graph from the
output back to the inputs, in reverse topological order, and applies the chain
rule at each node:

    input.grad += local derivative * node.grad

The += matters: a Value used twice receives a contribution from each use. This is
what loss.backward() does in PyTorch, one number at a time instead of tensors.
"""

import math


class Value:
    """A number, the Values it was computed from, and d(output)/d(this number) once backward() runs."""

    # Fixed attributes instead of a per-object dict: a training step makes tens of thousands of
    # Values, and fewer objects make both them and Python's garbage collector faster.
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = float(data)
        self.grad = 0.0  # filled in by backward() of some later Value
        self._children = children  # the Values this one was computed from (none for a leaf)
        self._local_grads = local_grads  # d(self)/d(child), one number per child

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- operations: each computes its result and its local derivatives ----

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))  # d(a+b)/da = d(a+b)/db = 1

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))  # d(ab)/da = b

    def __pow__(self, exponent):
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"Value ** takes an int or float exponent, got {type(exponent).__name__}")
        data = self.data ** exponent
        if isinstance(data, complex):  # what Python gives for a negative base and a fractional exponent
            raise ValueError(f"{self.data} ** {exponent} is not a real number")
        return Value(data, (self,), (exponent * self.data ** (exponent - 1),))  # d(a^n)/da = n a^(n-1)

    def relu(self):
        # slope 1 where the input is positive, 0 elsewhere: 0 at exactly 0, as torch chooses
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,))  # d(tanh a)/da = 1 - tanh(a)^2

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))  # exp is its own derivative

    def log(self):
        if self.data <= 0:  # fail here, where the bad number appears, not later as a nan
            raise ValueError(f"log of a non-positive number: {self.data}")
        return Value(math.log(self.data), (self,), (1 / self.data,))  # d(log a)/da = 1/a

    # ---- everything else is built from the operations above ----

    def __neg__(self):  # -a
        return self * -1

    def __sub__(self, other):  # a - b
        return self + (-other)

    def __truediv__(self, other):  # a / b = a * b^-1, for b a number or a Value
        return self * other ** -1

    # the reflected forms run when the number is on the left: 2 * a, 1 - a, 3 / a
    def __radd__(self, other):  # other + a
        return self + other

    def __rmul__(self, other):  # other * a
        return self * other

    def __rsub__(self, other):  # other - a
        return -self + other

    def __rtruediv__(self, other):  # other / a
        return self ** -1 * other

    # ---- backpropagation ----

    def backward(self):
        """Fill in .grad of every Value this one depends on with d(self)/d(that Value)."""
        # Topological order: each Value after all the Values it was computed from. A loop with a
        # stack, not recursion: a sum of many terms is a chain deeper than Python's recursion limit.
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))  # comes back once all its inputs are in order
                stack.extend((child, False) for child in node._children)
        self.grad = 1.0  # d(self)/d(self)
        # From the output back: every use of a node has added to its grad before it passes it on.
        for node in reversed(order):
            for child, local in zip(node._children, node._local_grads):
                child.grad += local * node.grad  # the chain rule
