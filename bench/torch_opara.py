"""An Opara-style multi-stream CUDA Graph in PyTorch: the baseline braid's schedulers must beat.

torch.fx traces the model; every call node gets a stream by Opara's rule (it inherits the stream
of its first predecessor whose stream has not already been handed on, else a new stream); nodes
launch in Opara's order (a topological order alternating ready compute-bound and memory-bound
nodes, smallest FLOP count first); a node waits on events of its producers on other streams; and
the whole run is captured into one torch.cuda.graph, forked from and joined back into the
capture stream. Tensors used across streams are record_stream()-ed so the graph pool does not
hand their memory to another stream too early.
"""
import torch
import torch.fx
from torch.fx.node import map_arg


def producers(node):
    found = []
    map_arg((node.args, node.kwargs), lambda n: found.append(n))
    return [p for p in dict.fromkeys(found) if p.op != "get_attr"]


def opara_streams(nodes):
    """Opara's stream rule over fx call nodes (placeholders and attributes take no stream)."""
    stream_of, handed_on, count = {}, set(), 0
    for node in nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        inherited = None
        for p in producers(node):
            s = stream_of.get(p)
            if s is not None and s not in handed_on:
                inherited = s
                break
        if inherited is None:
            inherited, count = count, count + 1
        handed_on.add(inherited)
        stream_of[node] = inherited
    return stream_of, count


def node_flops(gm, node):
    """A coarse FLOP estimate: convolutions and linears by their weights, everything else 0."""
    if node.op != "call_module":
        return 0
    m = gm.get_submodule(node.target)
    if isinstance(m, torch.nn.Conv2d):
        return m.weight.numel()
    if isinstance(m, torch.nn.Linear):
        return m.weight.numel()
    return 0


def opara_order(gm, nodes, stream_of):
    """Topological order alternating ready compute-bound (conv/linear) and memory-bound nodes."""
    calls = [n for n in nodes if n in stream_of]
    waiting = {n: {p for p in producers(n) if p in stream_of} for n in calls}
    ready, order, want_compute = [n for n in calls if not waiting[n]], [], True
    consumers = {n: [c for c in calls if n in waiting[c]] for n in calls}
    while ready:
        kind = [n for n in ready if (node_flops(gm, n) > 0) == want_compute] or ready
        pick = min(kind, key=lambda n: node_flops(gm, n))
        ready.remove(pick)
        order.append(pick)
        want_compute = not want_compute
        for c in consumers[pick]:
            waiting[c].discard(pick)
            if not waiting[c] and c not in order and c not in ready:
                ready.append(c)
    return order


class OparaRunner:
    def __init__(self, model):
        self.gm = torch.fx.symbolic_trace(model)
        nodes = list(self.gm.graph.nodes)
        self.stream_of, self.count = opara_streams(nodes)
        self.order = opara_order(self.gm, nodes, self.stream_of)
        self.placeholder = next(n for n in nodes if n.op == "placeholder")
        self.output = next(n for n in nodes if n.op == "output")
        self.streams = [torch.cuda.Stream() for _ in range(self.count)]
        crosses = {n for n in self.order for p in producers(n)
                   if p in self.stream_of and self.stream_of[p] != self.stream_of[n]}
        self.needs_event = {p for n in crosses for p in producers(n)}

    def __call__(self, x):
        env, events = {self.placeholder: x}, {}
        main = torch.cuda.current_stream()
        fork = torch.cuda.Event()
        fork.record(main)
        for s in self.streams:
            s.wait_event(fork)
        for node in self.order:
            s = self.streams[self.stream_of[node]]
            with torch.cuda.stream(s):
                for p in producers(node):
                    if p in events and self.stream_of.get(p) != self.stream_of[node]:
                        s.wait_event(events[p])
                args = map_arg(node.args, lambda n: env[n] if n in env else self._attr(n))
                kwargs = map_arg(node.kwargs, lambda n: env[n] if n in env else self._attr(n))
                for p in producers(node):
                    t = env.get(p)
                    if isinstance(t, torch.Tensor) and self.stream_of.get(p) != self.stream_of[node]:
                        t.record_stream(s)
                env[node] = self._run(node, args, kwargs)
                if node in self.needs_event:
                    events[node] = torch.cuda.Event()
                    events[node].record(s)
        for s in self.streams:
            done = torch.cuda.Event()
            done.record(s)
            main.wait_event(done)
        return map_arg(self.output.args[0], lambda n: env[n])

    def _attr(self, node):
        obj = self.gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj

    def _run(self, node, args, kwargs):
        if node.op == "call_module":
            return self.gm.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)


def capture_opara(model, static_x, warmup=3):
    """Captures the Opara-style run into one CUDA graph; returns (graph, output, streams)."""
    runner = OparaRunner(model)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            runner(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = runner(static_x)
    return graph, out, runner.count
