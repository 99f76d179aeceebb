"""PyTorch baselines for braid's side-by-side comparison (run on the GPU machine).

For each torchvision model, with random weights, batch N, cudnn.benchmark on and PyTorch's default
TF32 settings (TF32 in cuDNN convolutions, strict fp32 matmuls), it measures with CUDA events:
  eager      model(x) under inference_mode
  graph      one replay of a torch.cuda.graph capture of model(x) (the sequential CUDA Graph)
  compile    torch.compile(mode="reduce-overhead") calls (optional: slow to compile)
and the peak memory each allocates. Writes JSON.
"""
import argparse
import json
import statistics
import time

import torch
import torchvision

from torch_opara import capture_opara

MODELS = {
    "googlenet": (lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True), 224),
    "inception_v3": (lambda: torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True), 299),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), 224),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), 224),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None), 224),
    "nasnet_large": (lambda: __import__("timm").create_model("nasnetalarge", pretrained=False), 331),
}


def time_events(fn, warmup, runs):
    """Median and spread of fn() in milliseconds, each call between two CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(runs):
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    samples.sort()
    return {"median_ms": statistics.median(samples), "p10_ms": samples[len(samples) // 10],
            "p90_ms": samples[9 * len(samples) // 10], "runs": runs}


def peak_bytes(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def measure(name, batch, warmup, runs, compile_too):
    build, size = MODELS[name]
    torch.manual_seed(0)
    model = build().cuda().eval()
    x = torch.rand(batch, 3, size, size, device="cuda")
    out = {}
    with torch.inference_mode():
        out["eager"] = time_events(lambda: model(x), warmup, runs)
        out["eager"]["peak_bytes"] = peak_bytes(lambda: model(x))

        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.reset_peak_memory_stats()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = model(static_x)
        out["graph"] = time_events(graph.replay, warmup, runs)
        out["graph"]["peak_bytes"] = torch.cuda.max_memory_allocated()
        reference = static_y.clone()
        del graph, static_y

        try:
            torch.cuda.reset_peak_memory_stats()
            opara, opara_y, streams = capture_opara(model, static_x)
            torch.cuda.synchronize()
            out["opara"] = time_events(opara.replay, warmup, runs)
            out["opara"]["peak_bytes"] = torch.cuda.max_memory_allocated()
            out["opara"]["streams"] = streams
            opara.replay()
            torch.cuda.synchronize()
            out["opara"]["max_abs_diff"] = (opara_y - reference).abs().max().item()
            del opara, opara_y
        except Exception as e:  # an fx trace can fail on some models: record it, go on
            out["opara_error"] = f"{type(e).__name__}: {e}"[:300]
    if compile_too:
        try:
            torch._dynamo.reset()
            compiled = torch.compile(model, mode="reduce-overhead")
            t = time.time()
            with torch.no_grad():
                for _ in range(3):
                    compiled(x)
                out["compile"] = time_events(lambda: compiled(x), warmup, runs)
            out["compile"]["compile_s"] = time.time() - t
        except Exception as e:
            out["compile_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--compile", action="store_true", help="also torch.compile(reduce-overhead)")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "batch": a.batch,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "models": {},
    }
    for name in a.models.split(","):
        result["models"][name] = measure(name, a.batch, a.warmup, a.runs, a.compile)
        m = result["models"][name]
        opara = (f"opara {m['opara']['median_ms']:.3f} ms ({m['opara']['streams']} streams, "
                 f"max diff {m['opara']['max_abs_diff']:.2e})" if "opara" in m else m.get("opara_error"))
        print(f"torch {name}: eager {m['eager']['median_ms']:.3f} ms, graph {m['graph']['median_ms']:.3f} ms, "
              f"{opara}"
              + (f", compile {m['compile']['median_ms']:.3f} ms" if "compile" in m else ""), flush=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
