#!/usr/bin/env python3
"""The last step of scripts/gpu_check.sh: merges what the steps left in --state (tests.tsv,
benches.tsv, engine_step.json, engine_ops.json, torch.json, gpu.txt, info.txt) into
<out>/results.json and <out>/table.md, and prints the table. Standard library only; any input may be
missing or broken (that step then shows as such)."""

import argparse
import datetime
import json
import os
import sys

# ResNet-50 at 224²: 4.1 GMAC forward → ≈ 24.5 GFLOP per training image (forward + backward ≈ 3×).
RESNET50_TRAIN_FLOP_PER_IMAGE = 24.5e9
# The ops of `engine bench-ops` (src/bench.rs), listed even when neither side produced them.
EXPECTED_OPS = [f"{f}.{p}.{l}" for f in ("bn_relu", "bn_add_relu", "conv3x3") for l in ("nchw", "cl") for p in ("fwd", "fwd_bwd")]
EXPECTED_OPS += ["sgd.resnet50", "cross_entropy_ls.fwd_bwd", "mixup.fwd", "adain.fwd.512px", "adain.fwd.224px", "copy_d2d", "gemm_f16"]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"status": "missing", "error": f"{os.path.basename(path)} was not written (step skipped or killed)"}
    except (OSError, ValueError) as e:
        return {"status": "error", "error": f"{os.path.basename(path)}: {e}"}


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def tsv(path, fields):
    rows = []
    for line in read(path).splitlines():
        parts = line.split("\t")
        rows.append(dict(zip(fields, parts + [""] * (len(fields) - len(parts)))))
    return rows


def fmt_ms(ms):
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.1f} ms"


def pct(x):
    return f"{100 * x:.0f}%" if x is not None else "—"


def status_text(d):
    s = d.get("status", "missing")
    if s == "ok":
        return None
    err = str(d.get("error", ""))
    if s == "not_implemented":
        # "op `conv2d_forward` is not implemented on cuda" → name the op.
        return "NotImplemented: " + (err.split("`")[1] if "`" in err else err)[:60]
    if s == "unavailable":
        return "no CUDA driver"
    return f"{s}: {err[:70]}"


def generative_table(state):
    """Rows `engine bench-stylize` / `bench-pix2pix` (gen/<name>.json) beside
    tools/torch_gpu_bench_generative.py (torch_gen.json), joined on the row name."""
    gdir = os.path.join(state, "gen")
    ours = {}
    if os.path.isdir(gdir):
        for f in sorted(os.listdir(gdir)):
            if f.endswith(".json"):
                ours[f[:-5]] = load_json(os.path.join(gdir, f))
    torch_rows = {r.get("op"): r for r in (load_json(os.path.join(state, "torch_gen.json")).get("rows") or [])}
    names = list(ours) + [n for n in torch_rows if n not in ours]
    if not names:
        return []
    out = ["", "## Generative models (images/s; ratio = ours / PyTorch, > 1: we are faster)", "",
           "| benchmark | ours | PyTorch | ratio | note |", "|---|---|---|---|---|"]
    for n in names:
        o, b = ours.get(n, {}), torch_rows.get(n, {})
        oi = o.get("images_per_s") if o.get("status") == "ok" else None
        bi = b.get("images_per_s") if b.get("status") == "ok" else None
        out.append(f"| {n} | {f'{oi:.1f}' if oi else (status_text(o) or '—')} | "
                   f"{f'{bi:.1f}' if bi else (status_text(b) or '—')} | "
                   f"{f'{oi / bi:.2f}×' if (oi and bi) else '—'} | {status_text(o) or ''} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    st = lambda name: os.path.join(a.state, name)  # noqa: E731

    gpu_ok = read(st("gpu_ok")) == "1"
    no_gpu = read(st("no_gpu_reason"))
    tests = tsv(st("tests.tsv"), ["binary", "status", "passed", "failed", "ignored", "failing"])
    benches = tsv(st("benches.tsv"), ["binary", "status", "note"])
    estep = load_json(st("engine_step.json"))
    eops = load_json(st("engine_ops.json"))
    torch = load_json(st("torch.json"))

    # Ceilings, from PyTorch's run (copy bandwidth counts bytes read + written).
    tops = {}
    for r in torch.get("ops", []) or []:
        if r.get("status") == "ok":
            cur = tops.get(r["op"])
            if cur is None or r["ms"] < cur["ms"]:
                tops[r["op"]] = r
    bw = tops["copy_d2d"]["bytes"] / (tops["copy_d2d"]["ms"] / 1e3) if "copy_d2d" in tops else None
    flops = tops["gemm_f16"]["flops"] / (tops["gemm_f16"]["ms"] / 1e3) if "gemm_f16" in tops else None

    def ceiling_frac(r):
        if r is None or r.get("status") != "ok" or not r.get("ms"):
            return None
        s = r["ms"] / 1e3
        if r.get("flops") and flops:
            return r["flops"] / s / flops
        if r.get("bytes") and bw:
            return r["bytes"] / s / bw
        return None

    rows = []  # op, shape, ours, baseline, ratio, ours % ceiling, baseline % ceiling, note
    # Training step.
    ttrain = [t for t in torch.get("train", []) or [] if t.get("status") == "ok"]
    tcl = next((t for t in ttrain if t.get("channels_last")), None)
    tnchw = next((t for t in ttrain if not t.get("channels_last")), None)
    ours_ips = estep.get("images_per_s") if estep.get("status") == "ok" else None
    base_ips = tcl.get("images_per_s") if tcl else None
    model = estep.get("model", "resnet50")
    is_r50_224 = model == "resnet50" and estep.get("image", 224) == 224
    mfu = lambda ips: ips * RESNET50_TRAIN_FLOP_PER_IMAGE / flops if (ips and flops and is_r50_224) else None  # noqa: E731
    note = status_text(estep) or ""
    if estep.get("widened_f16_elements"):
        # Kernels that had to copy f16 inputs to f32 (mixed dtypes): each is a missed native path.
        note = (note + "; " if note else "") + "widened f16→f32: " + ", ".join(
            f"{k} {v:,}" for k, v in estep["widened_f16_elements"].items())
    reads = estep.get("device_reads_per_step")
    if reads is not None and reads != 2 and str(estep.get("device", "")).startswith("cuda"):
        # Each host-blocking read drains the queue; the step needs two (loss, SGD finiteness flag).
        note = (note + "; " if note else "") + f"{reads:g} device reads per step (2 expected)"
    if torch.get("status") not in ("ok", "partial"):
        note = (note + "; " if note else "") + "torch: " + (status_text(torch) or "")
    shape = f"{estep.get('batch', 256)}x3x{estep.get('image', 224)}² {'fp16' if estep.get('fp16', True) else 'f32'}"
    if tcl and (tcl.get("batch"), tcl.get("image")) != (estep.get("batch", 256), estep.get("image", 224)):
        note = (note + "; " if note else "") + f"torch ran resnet50 {tcl.get('batch')}x3x{tcl.get('image')}²"
    rows.append([
        f"train_step.{model} (img/s)", shape,
        f"{ours_ips:.0f} img/s ({'channels_last' if estep.get('channels_last') else 'NCHW'})" if ours_ips
        else (status_text(estep) or "—"),
        f"{base_ips:.0f} img/s ({'AMP' if tcl.get('amp_fp16') else 'f32'}, channels_last)" if base_ips else "—",
        f"{base_ips / ours_ips:.2f}×" if (ours_ips and base_ips) else "—",
        pct(mfu(ours_ips)), pct(mfu(base_ips)), note,
    ])
    if tnchw:
        rows.append(["train_step.resnet50 NCHW baseline", f"{tnchw['batch']}x3x{tnchw['image']}²", "—",
                     f"{tnchw['images_per_s']:.0f} img/s ({'AMP' if tnchw.get('amp_fp16') else 'f32'}, NCHW)", "—", "—",
                     pct(mfu(tnchw["images_per_s"])), ""])
    om = estep.get("peak_memory_bytes") if estep.get("status") == "ok" else None
    bm = tcl.get("peak_memory_bytes") if tcl else None
    rows.append([f"train_step.{model} peak memory", "", f"{om / 2**30:.2f} GiB" if om else "—",
                 f"{bm / 2**30:.2f} GiB" if bm else "—", f"{om / bm:.2f}×" if (om and bm) else "—",
                 "—", "—", "ours: pool high-water; torch: max_memory_allocated"])
    of = estep.get("forward_live_bytes") if estep.get("status") == "ok" else None
    bf = tcl.get("forward_live_bytes") if tcl else None
    rows.append([f"train_step.{model} memory after forward", "", f"{of / 2**30:.2f} GiB" if of else "—",
                 f"{bf / 2**30:.2f} GiB" if bf else "—", f"{of / bf:.2f}×" if (of and bf) else "—",
                 "—", "—", "weights, optimiser state, input and the graph; estimate: docs/memory-estimate.md"])

    # The same step fed from host memory (engine train's input path), against the resident batch.
    ehost = load_json(st("engine_step_host.json"))
    if ehost.get("status") != "missing":
        hips = ehost.get("images_per_s") if ehost.get("status") == "ok" else None
        rows.append([f"train_step.{model} fed from host (img/s)", shape,
                     f"{hips:.0f} img/s" if hips else (status_text(ehost) or "—"),
                     f"{ours_ips:.0f} img/s (batch resident on the device)" if ours_ips else "—",
                     f"{ours_ips / hips:.2f}×" if (hips and ours_ips) else "—", pct(mfu(hips)), "—",
                     "baseline = our resident step; " + (ehost.get("input") or "")])

    # Ops, joined on name.
    eops_rows = eops.get("ops", []) or []
    names = [r["op"] for r in eops_rows] + [n for n in tops if n not in {r["op"] for r in eops_rows}]
    names += [n for n in EXPECTED_OPS if n not in names]
    tall = torch.get("ops", []) or []
    for name in names:
        o = next((r for r in eops_rows if r["op"] == name), None)
        b = tops.get(name)
        b_failed = next((r for r in tall if r["op"] == name), None)
        note = ""
        if name.endswith(".unfused") and not b:
            # Our own unfused sequence: the baseline is our fused kernel (ratio > 1: fusing pays).
            fused = next((r for r in eops_rows if r["op"] == name[: -len(".unfused")] and r.get("status") == "ok"), None)
            if fused:
                b = dict(fused, impl="ours fused")
                note = "unfused / fused"
        ours = fmt_ms(o["ms"]) if (o and o.get("status") == "ok") else (status_text(o) if o else status_text(eops) or "—")
        base = f"{fmt_ms(b['ms'])} ({b.get('impl', 'torch')})" if b else (status_text(b_failed) if b_failed else "—")
        ratio = f"{o['ms'] / b['ms']:.2f}×" if (b and o and o.get("status") == "ok") else "—"
        shape = (o or b or {}).get("shape", "")
        rows.append([name, shape, ours, base, ratio, pct(ceiling_frac(o)), pct(ceiling_frac(b)), note])

    info = torch.get("info", {}) if isinstance(torch.get("info"), dict) else {}
    card = read(st("gpu.txt")).splitlines()[0] if read(st("gpu.txt")) else "unknown"
    head = [
        f"# GPU check, {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"- card: {card}",
        f"- engine: {'CUDA usable' if gpu_ok else no_gpu or 'no CUDA driver'}",
        f"- torch: {info.get('torch', '—')}, cuDNN {info.get('cudnn', '—')}",
        f"- cuDNN algorithm choice: engine ENGINE_CUDNN_SEARCH={os.environ.get('ENGINE_CUDNN_SEARCH', 'heuristic')}, "
        "torch cudnn.benchmark = True",
        f"- ceilings (PyTorch): copy {bw / 1e12:.2f} TB/s (read + write), fp16 GEMM {flops / 1e12:.0f} TFLOP/s"
        if (bw and flops) else "- ceilings: not measured (no GPU or the torch step failed)",
        "- ratio = ours time / baseline time (> 1: we are slower); for img/s rows baseline img/s / ours; "
        "% of ceiling: bytes moved ÷ time ÷ copy bandwidth, or FLOP ÷ time ÷ GEMM rate "
        "(train step: 24.5 GFLOP/image)",
        "",
    ]
    table = ["| op | shape | ours | baseline | ratio | ours % ceil | base % ceil | note |",
             "|---|---|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    ttable = ["", "## Tests (" + ("ENGINE_REQUIRE_CUDA=1 ENGINE_POISON=1" if gpu_ok else "no GPU: CPU paths only, CUDA tests skip") + ")", "",
              "| test binary | result | passed | failed | failing tests |", "|---|---|---|---|---|"]
    ttable += [f"| {t['binary']} | {t['status']} | {t['passed']} | {t['failed']} | {t['failing']} |" for t in tests]
    npass = sum(t["status"] == "pass" for t in tests)
    ttable += ["", f"{npass}/{len(tests)} test binaries passed."]
    gtable = generative_table(a.state)
    btable = ["", "## Benches", ""]
    btable += [f"- {b['binary']}: {b['status']} {b['note']}" for b in benches] or ["- no bench executables in the bundle"]
    md = "\n".join(head + table + gtable + ttable + btable) + "\n"
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(md)
    results = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "card": card, "engine_info": read(st("info.txt")), "gpu_ok": gpu_ok, "no_gpu_reason": no_gpu,
        "ceilings": {"copy_bytes_per_s": bw, "gemm_f16_flop_per_s": flops},
        "tests": tests, "benches": benches, "engine_step": estep, "engine_ops": eops, "torch": torch,
        "table": rows,
    }
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
