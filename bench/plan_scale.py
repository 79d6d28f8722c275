"""What the driver pays to plan and to resume a 100,000-video run: time and peak memory.

A run's driver discovers its inputs (``scan``) and plans every video's outputs
(``RunContext.from_inputs``) before any model starts; a rerun finds the videos already
done in the same step.  This script measures that step, each case alone in a fresh child
process (peak = the child's ``VmHWM``; ``base MB`` = its resident set after the imports,
before the step), on placeholder inputs: ``--videos`` files of 64 random bytes named
``.mp4`` in folders of 1,000 (planning never opens a video; a resume reads each source's
size, mtime and first and last bytes, the source identity).

Cases:

* ``plan, folder`` / ``plan, list``: an empty output folder; the inputs given as their
  folder, or as a ``.txt`` list of absolute paths (what a cluster job passes);
* ``resume, npy``: an output folder where every video is done by the ``.npy`` sink
  (``--npy-done`` of them: a ``[2, 8]`` float32 ``.npy`` and a sealed sidecar each, made
  from the sidecar of a real extraction with each video's name, source identity, shape
  and file sha256 put in; with ``--npy-done`` below ``--videos`` the rest plan as absent
  and the figures are for the done part; scale them by hand, saying so);
* ``resume, shards``: ``--shards`` tar shards of every video (a ``[2, 8]`` array and its
  sidecar each, written by the shard format's ``TarShardWriter``) and their indexes
  (``OUT/.vadfeat-index/*.json``), planned through the ``webdataset`` sink
  (``make_sink(..., sink="webdataset")``);
* ``resume, shards (minimal)``: the same folder, checked by the least any sharded sink must
  do, written out here: read every index, hash every shard once, look each video's stem
  up, compare its fingerprint and check its source identity (a floor for the sink's figure).

    python bench/plan_scale.py                          # 100,000 videos, 100 shards
    python bench/plan_scale.py --videos 10000 --npy-done 10000 --shards 10
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

import _common as C

PER_FOLDER = 1000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- setup (parent)


def placeholders(work: Path, n: int) -> Path:
    folder = work / f"plan_videos_x{n}"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        p = folder / f"d{k // PER_FOLDER:04d}" / f"v{k:06d}.mp4"
        if k % PER_FOLDER == 0:
            p.parent.mkdir(parents=True)
        p.write_bytes(rng.bytes(64))
        paths.append(str(p))
    (work / f"plan_list_x{n}.txt").write_text("\n".join(paths) + "\n")
    done.touch()
    return folder


def template_sidecar(work: Path) -> dict[str, Any]:
    """The sidecar of a real extraction (tiny random model) of one synthetic video."""
    path = work / "plan_template.json"
    if path.exists():
        return json.loads(path.read_text())
    import vadfeat
    from vadfeat.testing import synth

    src = work / "plan_template_in"
    synth.write_video(src / "t.mp4", synth.scene_frames(32, width=64, height=48, seed=0), fps=25)
    out = work / "plan_template_out"
    shutil.rmtree(out, ignore_errors=True)
    s = vadfeat.extract([src], out, random_weights=True, model="vit_tiny_patch16_224", device="cpu",
                        size=32, short_side=32, progress=False)
    assert s.exit_code == 0, s.describe()
    meta = json.loads((out / "t.json").read_text())
    path.write_text(json.dumps(meta))
    return dict(meta)


def video_sidecar(template: dict[str, Any], video: Path, name: str, feat: np.ndarray,
                  **fields: Any) -> dict[str, Any]:
    from vadfeat.store.identity import source_identity
    from vadfeat.store.sidecar import seal_sidecar

    meta = dict(template)
    meta.update(video=name, source=str(video), source_identity=source_identity(video, content=True),
                shape=list(feat.shape), snippets=[[16 * i, 16 * i + 15] for i in range(feat.shape[0])],
                num_frames=16 * feat.shape[0], **fields)
    meta.pop("sidecar_sha256", None)
    return seal_sidecar(meta)


def npy_bytes(feat: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, feat)
    return buf.getvalue()


def npy_done(work: Path, videos: Path, n_done: int, template: dict[str, Any]) -> Path:
    out = work / f"plan_out_npy_x{n_done}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    feat = np.arange(16, dtype=np.float32).reshape(2, 8)
    data = npy_bytes(feat)
    digest = hashlib.sha256(data).hexdigest()
    for k in range(n_done):
        rel = PurePosixPath(f"d{k // PER_FOLDER:04d}/v{k:06d}")
        target = out / rel
        if k % PER_FOLDER == 0:
            target.parent.mkdir(parents=True)
        target.with_suffix(".npy").write_bytes(data)
        meta = video_sidecar(template, videos / f"{rel}.mp4", f"{rel}.mp4", feat,
                             files={f"v{k:06d}.npy": digest})
        target.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    (out / ".complete").touch()
    return out


def shard_catalog(work: Path, videos: Path, n: int, shards: int, template: dict[str, Any]) -> Path:
    """``shards`` tar shards of ``n`` videos and their indexes, written by the shard format's
    own writer (``TarShardWriter``) and committed as the sink commits them."""
    from vadfeat.store import shards as fmt

    out = work / f"plan_out_shards_x{n}_{shards}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    feat = np.arange(16, dtype=np.float32).reshape(2, 8)
    per = -(-n // shards)
    writer = fmt.new_writer_id()
    for s in range(shards):
        name = fmt.shard_name(writer, s, "webdataset")
        w = fmt.TarShardWriter(out / f".{name}.tmp", name)
        for k in range(s * per, min(n, (s + 1) * per)):
            stem = f"d{k // PER_FOLDER:04d}/v{k:06d}"
            meta = video_sidecar(template, videos / f"{stem}.mp4", f"{stem}.mp4", feat)
            w.add(stem, feat, meta)
        w.close()
        os.replace(w.path, out / name)
        fmt.write_index(out, w.index(mtime_ns=(out / name).stat().st_mtime_ns))
    (out / ".complete").touch()
    return out


# --------------------------------------------------------------------------- children


def child_plan(inputs: str, out: str, fingerprint: dict[str, Any], sink_name: str) -> dict[str, Any]:
    from vadfeat.engines.context import RunContext
    from vadfeat.io.inputs import scan
    from vadfeat.store import sinks

    base = rss_mb()
    t0 = time.perf_counter()
    found = scan([inputs])
    t_scan = time.perf_counter() - t0
    kwargs: dict[str, Any] = {}
    minimal = False
    if sink_name == "minimal":
        minimal = True
    elif sink_name != "npy":
        kwargs["sink"] = sinks.make_sink(out, layout="flat", crops=1, sink=sink_name)
    if minimal:
        states = minimal_shard_resume(Path(out), found.items, fingerprint)
    else:
        ctx = RunContext.from_inputs([inputs], out, layout="flat", crops=1, fingerprint=lambda: fingerprint,
                                     found=found, **kwargs)
        states = [st.status for st in ctx.states]
    wall = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for st in states:
        counts[st] = counts.get(st, 0) + 1
    return {"base_mb": base, "scan_s": t_scan, "plan_s": wall, "states": counts, "minimal": minimal}


def minimal_shard_resume(out: Path, items: list[Any], fingerprint: dict[str, Any]) -> list[str]:
    """The least any sharded sink's resume check does, written out for the measurement."""
    from vadfeat.io.inputs import output_stem
    from vadfeat.store.fingerprint import same_fingerprint
    from vadfeat.store.identity import source_changed
    from vadfeat.store.sidecar import sidecar_edited

    catalog: dict[str, tuple[str, dict[str, Any]]] = {}
    shard_ok: dict[str, bool] = {}
    for path in sorted((out / ".vadfeat-index").glob("*.json")):  # name order: the newest wins
        index = json.loads(path.read_text())
        if sidecar_edited(index) is not None:
            continue
        for stem, entry in index["videos"].items():
            catalog[stem] = (index["shard"], entry)
        h = hashlib.sha256()
        with open(out / index["shard"], "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
        shard_ok[index["shard"]] = h.hexdigest() == index["sha256"]
    states = []
    for item in items:
        hit = catalog.get(output_stem(item).as_posix())
        if hit is None:
            states.append("absent")
            continue
        shard, entry = hit
        meta = entry["sidecar"]
        if (not shard_ok[shard] or not same_fingerprint(meta["fingerprint"], fingerprint)
                or source_changed(meta["source_identity"], item.source) is not None):
            states.append("redo")
        else:
            states.append("done")
    return states


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--npy-done", type=int, default=None, help="videos done in the .npy output (all)")
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--cases", nargs="+", default=["plan-folder", "plan-list", "resume-npy", "resume-shards",
                                                     "resume-shards-minimal"])
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--child", nargs=4, metavar=("INPUTS", "OUT", "FINGERPRINT_JSON", "SINK"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        inputs, out, fp, sink_name = args.child
        res = child_plan(inputs, out, json.loads(Path(fp).read_text()), sink_name)
        C.child_report(**res)
        return 0
    n_done = args.videos if args.npy_done is None else args.npy_done
    C.header(f"planning and resuming {args.videos} videos: driver time and peak memory")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    videos = placeholders(work, args.videos)
    template = template_sidecar(work)
    fp_file = work / "plan_fingerprint.json"
    fp_file.write_text(json.dumps(template["fingerprint"]))
    print(f"setup   : {args.videos} placeholder videos ({time.perf_counter() - t0:.1f} s)", flush=True)
    rows = [["case", "videos", "output", "scan s", "plan s (incl. scan)", "ms/video", "base MB",
             "peak MB", "peak - base MB", "states", "wall s (child)", "CPU s (child)"]]

    def report(case: str, inputs: Path, out: Path, sink_name: str, what: str) -> None:
        r = C.run_child([__file__, "--work", str(work), "--child", str(inputs), str(out), str(fp_file),
                         sink_name])
        name = case + (" (minimal)" if r["minimal"] else "")
        rows.append([name, str(args.videos), what, f"{r['scan_s']:.2f}", f"{r['plan_s']:.2f}",
                     f"{1000 * r['plan_s'] / args.videos:.3f}", f"{r['base_mb']:.0f}",
                     f"{r['peak_rss_mb']:.0f}",
                     f"{r['peak_rss_mb'] - r['base_mb']:.0f}", json.dumps(r["states"]), f"{r['wall_s']:.1f}",
                     f"{r['cpu_s']:.1f}"])
        print(C.table([rows[0], rows[-1]]), flush=True)

    empty = work / "plan_out_empty"
    shutil.rmtree(empty, ignore_errors=True)
    if "plan-folder" in args.cases:
        report("plan, folder", videos, empty, "npy", "empty")
    if "plan-list" in args.cases:
        report("plan, list", work / f"plan_list_x{args.videos}.txt", empty, "npy", "empty")
    if "resume-npy" in args.cases:
        t0 = time.perf_counter()
        out = npy_done(work, videos, n_done, template)
        print(f"setup   : .npy output with {n_done} done videos ({time.perf_counter() - t0:.1f} s, "
              f"{C.dir_bytes(out) / 1e6:.0f} MB)", flush=True)
        report("resume, npy", videos, out, "npy", f"{n_done} done (.npy)")
    if "resume-shards" in args.cases or "resume-shards-minimal" in args.cases:
        t0 = time.perf_counter()
        out = shard_catalog(work, videos, args.videos, args.shards, template)
        idx = sum(p.stat().st_size for p in (out / ".vadfeat-index").glob("*.json"))
        print(f"setup   : {args.shards} tar shards + indexes of {args.videos} videos "
              f"({time.perf_counter() - t0:.1f} s, indexes {idx / 1e6:.0f} MB, shards "
              f"{sum(p.stat().st_size for p in out.glob('*.tar')) / 1e6:.0f} MB)", flush=True)
        if "resume-shards" in args.cases:
            report("resume, shards", videos, out, "webdataset", f"{args.shards} shards")
        if "resume-shards-minimal" in args.cases:
            report("resume, shards", videos, out, "minimal", f"{args.shards} shards")
    print()
    print(C.table(rows))
    C.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
