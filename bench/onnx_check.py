"""The PyTorch half of the ONNX device check (issue 5); bench/onnx_check.ts is braid's half.

For each model, with random weights (BatchNorm scaled to unit RMS on random images, see
calibrate_batchnorm) in eval mode and batch 1, it:
  - exports DIR/NAME.onnx with torch.onnx.export (TorchScript exporter, opset 17);
  - writes a fixed random input (DIR/NAME.input.bin: float32 images, or int64 token ids) and
    PyTorch's outputs on it, twice: strict fp32 (TF32 off everywhere) as DIR/NAME.OUT.fp32.bin,
    and with PyTorch's defaults (TF32 in cuDNN convolutions, strict fp32 matmuls) as
    DIR/NAME.OUT.tf32.bin; raw little-endian float32; and the float64 result of the same model as
    DIR/NAME.OUT.f64.bin (raw float64), the yardstick for how accurate each fp32 result is;
  - times one replay of a torch.cuda.graph capture of the model (PyTorch's sequential CUDA Graph,
    PyTorch's default numerics), with CUDA events, median of RUNS replays after a warm-up.
Everything is described in DIR/meta.json, which the TypeScript driver reads. Without a GPU (a
development machine) the outputs come from the CPU, both files hold the strict fp32 result, and
nothing is timed.

  python3 bench/onnx_check.py --dir /tmp/onnx [--models resnet50,bert] [--runs 200] [--no-calibrate]
                              [--center]
"""
import argparse
import copy
import json
import os
import statistics
import time
import warnings

import torch

IMAGE_MODELS = {
    "googlenet": 224,
    "inception_v3": 299,
    "squeezenet1_1": 224,
    "resnet50": 224,
    "densenet121": 224,
    "mobilenet_v3_large": 224,
    "efficientnet_b0": 224,
    "nasnetalarge": 331,
}
BERT_SEQUENCE = 128


class BertOutputs(torch.nn.Module):
    """BertModel called with keywords (the tracer passes positional arguments), as two tensors."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids):
        out = self.bert(input_ids=input_ids)
        return out.last_hidden_state, out.pooler_output


def build(name, calibrate=True, center=False):
    """The model (random weights, eval mode) and its example inputs, as a dict name -> tensor."""
    torch.manual_seed(0)
    if name == "bert":
        from transformers import BertConfig, BertModel

        config = BertConfig(attn_implementation="eager")
        ids = torch.randint(0, config.vocab_size, (1, BERT_SEQUENCE), dtype=torch.int64)
        return BertOutputs(BertModel(config)).eval(), {"input_ids": ids}, ["last_hidden_state",
                                                                           "pooler_output"]
    if name == "nasnetalarge":
        import timm

        model = timm.create_model("nasnetalarge", pretrained=False)
    else:
        import torchvision

        kwargs = {"weights": None}
        if name in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=True)
        model = getattr(torchvision.models, name)(**kwargs)
    size = IMAGE_MODELS[name]
    if calibrate:
        calibrate_batchnorm(model, size, center=center)
    x = torch.rand(1, 3, size, size)
    return model.eval(), {"input": x}, ["logits"]


def calibrate_batchnorm(model, size, batches=2, center=False):
    """Sets BatchNorm running statistics from train-mode passes over random images.

    With freshly initialised statistics (mean 0, variance 1) the random-weight networks lose their
    signal layer by layer: googlenet's logits are then its fc bias to within 1e-12 and nasnet's to
    within 1e-3, and a comparison would test nothing. Calibrated statistics keep activations at unit
    scale, so every output depends on the input.

    By default each channel is scaled to unit root mean square (running mean 0, running variance
    the measured E[x^2]) rather than centred to unit variance. Deep in a random network a channel's
    mean dwarfs its spread, and subtracting it cancels all but the rounding: both fp32
    implementations then sit 3e-5 from float64 on resnet50 (2026-11-22), and two of them disagree by
    that much for no fault of either. Without the cancellation the comparison measures the operators,
    not the conditioning. `center=True` keeps the mean/variance calibration.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(2, 3, size, size))
        if not center:
            for m in norms:
                m.running_var += m.running_mean ** 2
                m.running_mean.zero_()


def set_tf32(on):
    torch.backends.cudnn.benchmark = True  # as bench/torch_baseline.py: tuned convolutions
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default for matmuls either way


def outputs_of(model, inputs):
    with torch.inference_mode():
        out = model(*inputs.values())
    return [out] if isinstance(out, torch.Tensor) else list(out)


def time_ms(fn, warmup, runs):
    """Median of `runs` calls of fn, each between two CUDA events (bench/torch_baseline.py)."""
    from torch_baseline import time_events

    return time_events(fn, warmup, runs)["median_ms"]


def capture(model, inputs):
    """A torch.cuda.graph capture of one call of the model on static inputs."""
    static = {k: v.clone() for k, v in inputs.items()}
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                outputs_of(model, static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs_of(model, static)
    return graph


def graph_latency_ms(model, inputs, warmup, runs):
    """PyTorch's sequential CUDA Graph: the median replay time, and how it was captured.

    Where the model's Python code copies a host tensor to the GPU on every call (not allowed while
    capturing), the TorchScript trace of it is captured instead (constants are baked in), and failing
    that the eager call is timed, and the entry says so.
    """
    try:
        return time_ms(capture(model, inputs).replay, warmup, runs), "graph"
    except RuntimeError as e:
        error = str(e).splitlines()[0]
    try:
        with torch.inference_mode():
            traced = torch.jit.trace(model, tuple(inputs.values()), check_trace=False)
        return time_ms(capture(traced, inputs).replay, warmup, runs), "graph of the traced module"
    except RuntimeError:
        pass
    with torch.inference_mode():
        return time_ms(lambda: outputs_of(model, inputs), warmup, runs), f"eager ({error})"


def write(path, tensor):
    tensor.detach().cpu().contiguous().numpy().tofile(path)


def check_model(name, directory, runs, calibrate, center):
    model, inputs, output_names = build(name, calibrate, center)
    onnx_path = os.path.join(directory, f"{name}.onnx")
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(inputs.values()),
            onnx_path,
            dynamo=False,
            opset_version=17,
            do_constant_folding=True,
            input_names=list(inputs),
            output_names=output_names,
        )
    export_s = time.time() - t
    (input_name, x), = inputs.items()
    write(os.path.join(directory, f"{name}.input.bin"), x)
    entry = {
        "onnx": f"{name}.onnx",
        "export_s": round(export_s, 2),
        "input": {"name": input_name, "shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""),
                  "file": f"{name}.input.bin"},
        "outputs": [],
    }
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    model = model.to(device)
    on_device = {k: v.to(device) for k, v in inputs.items()}
    results = {}
    for precision, tf32 in (("fp32", False), ("tf32", True)):
        set_tf32(tf32 and gpu)
        results[precision] = outputs_of(model, on_device)
    # The float64 result: how far fp32 itself is from exact, for PyTorch and braid alike.
    double = copy.deepcopy(model).double()
    results["f64"] = outputs_of(double, {k: v.double() if v.is_floating_point() else v
                                         for k, v in on_device.items()})
    del double
    for i, out_name in enumerate(output_names):
        files = {}
        for precision in ("fp32", "tf32", "f64"):
            files[precision] = f"{name}.{out_name}.{precision}.bin"
            write(os.path.join(directory, files[precision]), results[precision][i])
        entry["outputs"].append({"name": out_name, "shape": list(results["fp32"][i].shape), "files": files})
    if gpu:
        set_tf32(True)  # PyTorch's defaults: the latency braid is compared with
        entry["torch_graph_ms"], entry["torch_timing"] = graph_latency_ms(model, on_device, 20, runs)
    entry["device"] = torch.cuda.get_device_name() if gpu else "cpu"
    return entry


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--models", default=",".join([*IMAGE_MODELS, "bert"]))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--no-calibrate", action="store_true",
                        help="keep the fresh BatchNorm statistics (outputs barely depend on the input)")
    parser.add_argument("--center", action="store_true",
                        help="calibrate BatchNorm to unit variance, not unit RMS (ill-conditioned)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    meta_path = os.path.join(args.dir, "meta.json")
    meta = {"torch": torch.__version__, "models": {}}
    if os.path.exists(meta_path):  # a partial re-run keeps the other models' entries
        with open(meta_path) as f:
            meta["models"] = json.load(f).get("models", {})
    for name in args.models.split(","):
        t = time.time()
        try:
            meta["models"][name] = check_model(name, args.dir, args.runs, not args.no_calibrate,
                                              args.center)
        except Exception as e:  # record and go on: one model's failure must not hide the others
            meta["models"][name] = {"error": f"{type(e).__name__}: {e}"}
        entry = meta["models"][name]
        print(f"{name}: {entry.get('error') or 'exported'} in {time.time() - t:.1f} s"
              + (f", torch {entry['torch_graph_ms']:.3f} ms ({entry['torch_timing']})"
                 if "torch_graph_ms" in entry else ""),
              flush=True)
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
