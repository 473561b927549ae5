"""The tables printed at the end of a run, from the results dict (the JSON file's content)."""

from __future__ import annotations

from typing import Callable

def format_train(rows: list[dict]) -> str:
    head = (
        f"{'case':<16} {'settings':<56} {'s/iter':>8} {'img/s':>8} {'x ref':>6} {'x prev':>6} {'TFLOP/s':>8} "
        f"{'%peak':>6} {'mem GB':>7} {'recomp':>6}"
    )
    lines = [head, "-" * len(head)]
    ref = next((r["img_per_s"] for r in rows if r.get("reference") and "img_per_s" in r), None)
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:<16} {r['settings']:<56} error: {r['error']}")
            continue
        speedup = f"{r['img_per_s'] / ref:6.2f}" if ref else "     -"
        prev = f"{r['speedup_vs_built_on']:6.2f}" if "speedup_vs_built_on" in r else "     -"
        mem = f"{r['peak_mem_gb']:7.2f}" if r["peak_mem_gb"] is not None else "      -"
        lines.append(
            f"{r['name']:<16} {r['settings']:<56} {r['s_per_iter']:8.4f} {r['img_per_s']:8.2f} {speedup} {prev} "
            f"{r['achieved_tflops']:8.3f} {100 * r['fraction_of_peak']:5.1f}% {mem} "
            f"{r['graphs_compiled_after_first_step']:6d}"
        )
    return "\n".join(lines)


def format_results(results: dict, formatters: dict[str, Callable[[object], list[str]]]) -> str:
    """The header and the training tables, then each registered section's lines (``formatters``:
    section name -> its format function, in the order the sections ran)."""
    m = results["machine"]
    out = [
        f"gan_style bench on {m.get('gpu', {}).get('name') or m['cpu']} ({m['device']}), "
        f"torch {m['versions']['torch']}, torch threads {m['torch_threads']}, load {m['load_average_1_5_15']}",
        f"model: ngf {results['model']['ngf']}, ndf {results['model']['ndf']}, {results['model']['n_blocks']} blocks, "
        f"{results['size']} px; one iteration = "
        f"{results['flops']['tflop_per_iter_batch1']:.4g} TFLOP (batch 1)",
    ]
    out += format_training(results)
    for name, format_section in formatters.items():
        if results.get(name):
            out += ["", *format_section(results[name])]
    return "\n".join(out)


def format_training(results: dict) -> list[str]:
    out = []
    if results.get("train"):
        out += [
            "",
            "training (synthetic inputs; img/s = image pairs per second; x prev = speed-up over the row it was built "
            "on; recomp = graphs compiled after step 1, must be 0)",
            format_train(results["train"]),
        ]
    if results.get("optimizer"):
        out += ["", "optimizer step alone (all four networks' parameters)"]
        out += [
            f"  Adam {r['adam']:<9} " + (f"error: {r['error']}" if "error" in r else f"{r['ms_per_step']:8.2f} ms/step")
            for r in results["optimizer"]
        ]
    if results.get("profile"):
        p = results["profile"]
        out += ["", f"profile of {p['case']} (top operators by self time, per iteration)"]
        out += [
            f"  {o['op'][:42]:<42} {o['self_ms_per_iter']:9.2f} ms {100 * o['share']:5.1f}% "
            f"{o['calls_per_iter']:6.0f} calls"
            for o in p["ops"]
        ]
    return out


def format_data(data: dict) -> list[str]:
    out = [f"data pipeline ({data.get('root', '')}; {data.get('transform', '')})"]
    if "skipped" in data:
        out.append(f"  skipped: {data['skipped']}")
    for r in data.get("loader", []):
        out.append(
            f"  workers {r['workers']:>2}: {r['pairs_per_s']:8.1f} pairs/s "
            f"({r['pairs_per_s_per_worker']:.1f} per worker), start-up {r['startup_s']:.2f} s"
        )
    for name, ms in data.get("decode_ms_per_image", {}).items():
        out.append(f"  decode {name:<32} {ms:7.2f} ms/image")
    return out


def format_translate(tr: dict) -> list[str]:
    layout = "channels_last" if tr["channels_last"] else "NCHW"
    out = [
        f"translation (gan_style.inference; generator ngf {tr['ngf']}, {tr['n_blocks']} blocks, {layout}, "
        "batch 1, CPU tensors in and out)",
    ]
    for r in tr["rows"]:
        if "error" in r:
            out.append(f"  {r['size']:>5} px {r['precision']}: error: {r['error']}")
            continue
        mem = f", peak {r['peak_mem_gb']:.2f} GB" if r["peak_mem_gb"] is not None else ""
        out.append(
            f"  {r['size']:>5} px {r['precision']}: {r['img_per_s']:8.2f} img/s "
            f"({r['gflop_per_img']:.3g} GFLOP/img){mem}"
        )
    for r in tr["large"]:
        how = f"tiles of {r['tile']}" if r["tile"] else "whole"
        result = r.get("error") or f"{r['seconds']:.1f} s, peak {r['peak_mem_gb']:.2f} GB"
        out.append(f"  {r['width']}x{r['height']} {r['precision']} {how}: {result}")
    return out


def format_methods(section: dict) -> list[str]:
    out = [
        f"methods side by side (one training step, synthetic inputs, {section['size']} px, {section['precision']}, "
        f"batch {section['batch']}, eager; x first = iterations/s over the first method's; mem: CUDA only)",
        f"  {'method':<9} {'s/iter':>8} {'img/s':>8} {'x first':>10} {'mem GB':>7}  parameters",
    ]
    for r in section["rows"]:
        if "error" in r:
            out.append(f"  {r['method']:<9} error: {r['error']}")
            continue
        speedup = f"{r['speedup_vs_first']:10.2f}" if "speedup_vs_first" in r else f"{'-':>10}"
        mem = f"{r['peak_mem_gb']:7.2f}" if r["peak_mem_gb"] is not None else f"{'-':>7}"
        out.append(
            f"  {r['method']:<9} {r['s_per_iter']:8.4f} {r['img_per_s']:8.2f} {speedup} {mem}  "
            f"{r['parameters'] / 1e6:.2f} M"
        )
    return out


def format_rows(rows: list[dict]) -> list[str]:
    """Any section that returns a list of flat dicts: one line per row, ``key value`` pairs."""
    return ["  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()) for r in rows]
