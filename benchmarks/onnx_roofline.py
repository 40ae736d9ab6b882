"""How close the transformer encoder already runs to this CPU's matrix-multiply peak.

Not a test: prints a table. The ONNX speed-up over PyTorch is bounded by how far PyTorch is
from the peak rate of the CPU's multiply units, so this measures, on one thread and on two:

* the fp32 GEMM rate: ``torch.matmul`` and ONNX Runtime's ``MatMul`` of (2048 x 768) @
  (768 x 3072), the shape of a BERT feed-forward layer, in GFLOP/s;
* the int8 GEMM rate: ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32, what
  dynamic quantisation runs) on the same shape, in GOP/s;
* the encoder itself on ``--windows`` windows of ``--length`` wordpieces: PyTorch
  (transformers ``AutoModel``), the ONNX fp32 export and the int8 export, as FLOP/s of
  the model's own arithmetic (per token and layer: 24 h^2 for the projections and the
  feed-forward, 4 T h for attention).

Needs the models ``benchmarks/onnx_speed.py --sizes 6x768`` leaves in its work dir.

Usage::

    python benchmarks/onnx_roofline.py --work-dir /tmp/textcat-kit-onnx-bench/6x768
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def encoder_flops(layers: int, hidden: int, tokens: int, length: int) -> float:
    """Multiply-adds x 2 of a BERT encoder over ``tokens`` wordpieces in windows of ``length``."""
    return float(layers * tokens * (24 * hidden * hidden + 4 * length * hidden))


def torch_gemm_rate(m: int, k: int, n: int, repeats: int) -> float:
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / best_seconds(lambda: torch.matmul(a, b), repeats) / 1e9


def ort_gemm_rate(m: int, k: int, n: int, threads: int, repeats: int, int8: bool) -> float:
    """GFLOP/s (GOP/s for int8) of one ONNX Runtime MatMul / MatMulInteger."""
    import onnxruntime as ort

    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        op, a_type, y_type = "MatMulInteger", TensorProto.UINT8, TensorProto.INT32
        weight = numpy_helper.from_array(rng.integers(-127, 127, (k, n), dtype=np.int8), "B")
        a = rng.integers(0, 255, (m, k), dtype=np.uint8)
    else:
        op, a_type, y_type = "MatMul", TensorProto.FLOAT, TensorProto.FLOAT
        weight = numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "B")
        a = rng.normal(size=(m, k)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])],
        "gemm",
        [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(
        model.SerializeToString(), _options(threads), providers=["CPUExecutionProvider"]
    )
    feeds = {"A": a}
    return 2 * m * k * n / best_seconds(lambda: session.run(None, feeds), repeats) / 1e9


def _options(threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="/tmp/textcat-kit-onnx-bench/6x768")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    work = Path(args.work_dir)
    config = json.loads((work / "hf" / "config.json").read_text(encoding="utf8"))
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    model = AutoModel.from_pretrained(work / "hf").eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, config["vocab_size"], (args.windows, args.length), dtype=np.int64)
    mask = np.ones_like(ids)
    flops = encoder_flops(layers, hidden, ids.size, args.length)
    print(
        f"encoder {layers}x{hidden}, {args.windows} windows x {args.length} wordpieces: "
        f"{flops / 1e9:.1f} GFLOP per run"
    )
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        row = {
            "threads": threads,
            "fp32 GEMM (torch), GFLOP/s": torch_gemm_rate(2048, hidden, 4 * hidden, 5),
            "fp32 GEMM (ORT), GFLOP/s": ort_gemm_rate(
                2048, hidden, 4 * hidden, threads, 5, int8=False
            ),
            "int8 GEMM (ORT), GOP/s": ort_gemm_rate(
                2048, hidden, 4 * hidden, threads, 5, int8=True
            ),
        }
        with torch.inference_mode():
            feeds_t = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
            seconds = best_seconds(lambda: model(**feeds_t), args.repeats)  # noqa: B023
        row["encoder torch, GFLOP/s"] = flops / seconds / 1e9
        for name in ("fp32", "int8"):
            session = ort.InferenceSession(
                str(work / f"onnx-{name}" / "textcat" / "model.onnx"),
                _options(threads),
                providers=["CPUExecutionProvider"],
            )
            inputs = {item.name for item in session.get_inputs()}
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            seconds = best_seconds(lambda: session.run(None, feeds), args.repeats)  # noqa: B023
            row[f"encoder ONNX {name}, GFLOP/s"] = flops / seconds / 1e9
        rows.append(row)
        print(json.dumps({k: round(v, 1) for k, v in row.items()}), flush=True)

    print("\n| threads | " + " | ".join(k for k in rows[0] if k != "threads") + " |")
    print("|---:|" + "---:|" * (len(rows[0]) - 1))
    for row in rows:
        cells = [f"{v:.1f}" for k, v in row.items() if k != "threads"]
        print(f"| {row['threads']} | " + " | ".join(cells) + " |")
    for row in rows:
        fp32_peak = max(row["fp32 GEMM (torch), GFLOP/s"], row["fp32 GEMM (ORT), GFLOP/s"])
        torch_rate = row["encoder torch, GFLOP/s"]
        print(
            f"- {row['threads']} thread(s): torch runs the encoder at "
            f"{100 * torch_rate / fp32_peak:.0f}% of the faster fp32 GEMM rate, so an fp32 "
            f"encoder can be at most {fp32_peak / torch_rate:.2f}x faster; an encoder running "
            "entirely at the int8 GEMM rate at most "
            f"{row['int8 GEMM (ORT), GOP/s'] / torch_rate:.2f}x "
            "(before its fp32 parts: attention softmax, LayerNorm, GELU, quantising activations)"
        )
    print(f"\nbest of {args.repeats} runs per cell; load average (1 min) {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
