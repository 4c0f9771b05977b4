"""A multilayer perceptron made of Values: neurons, layers of neurons, layers in sequence.

Nothing here knows about gradients: each neuron only computes w . x + b with Value
arithmetic, and engine.py's backward() finds d(loss)/d(every weight) from the graph.
"""

import random

from engine import Value


class Module:
    """What every part of the network offers: its parameters, and a way to clear their gradients."""

    def parameters(self):
        return []

    def zero_grad(self):
        # backward() adds to .grad, so the previous step's gradients must go first
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """relu(w . x + b), or w . x + b alone when linear."""

    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        if len(x) != len(self.w):  # zip would silently drop the extra inputs, or the extra weights
            raise ValueError(f"expected {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)  # starting the sum at b adds the bias
        return act.relu() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]


class Layer(Module):
    """nout neurons, each reading the same nin inputs."""

    def __init__(self, nin, nout, nonlin=True):
        self.neurons = [Neuron(nin, nonlin) for _ in range(nout)]

    def __call__(self, x):
        return [n(x) for n in self.neurons]

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """Layers of sizes nouts after nin inputs: ReLU between them, the last one linear (a raw score)."""

    def __init__(self, nin, nouts):
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i < len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x  # one output: the Value itself, not a list of one

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
