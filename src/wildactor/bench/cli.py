"""`wildactor bench run | report | validate | make-suite | import-opens2v`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    run = sub.add_parser("run", help="generate (or find) and score every item of a suite")
    run.add_argument(
        "--suite", default="actorworld", help="shipped suite name (actorworld, template) or a YAML/JSON file"
    )
    run.add_argument("-o", "--out", required=True, help="output folder (rerun to resume)")
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", metavar="DIR", help="score existing videos named <item_id>.mp4 (any system)")
    src.add_argument(
        "--model", metavar="DIR", help="WildActor model folder to generate with ('default' = embedded model)"
    )
    src.add_argument("--baseline", choices=("pasted", "no-reference", "oracle"), help="a reference baseline")
    run.add_argument("--lora", metavar="FILE", help="reference LoRA (safetensors) for --model")
    run.add_argument("--no-references", action="store_true", help="with --model: generate without references")
    run.add_argument("--method", help="name of this run in the report (default: from the source)")
    run.add_argument("--params", default="", help="parameter count or note shown in the report (e.g. 5B)")
    run.add_argument("--subjects", type=int, help="only the first N subjects")
    run.add_argument("--limit", type=int, help="at most N items (storylines are never split)")
    run.add_argument("--frames", type=int, help="override the suite's frame count when generating")
    run.add_argument("--size", type=int, help="override the suite's (square) frame size when generating")
    run.add_argument("--steps", type=int, help="override the suite's denoising steps")
    run.add_argument(
        "--face", default="dlib", help="face back-end: dlib (default) | dlib:DIR | insightface:DIR"
    )
    run.add_argument("--clip", metavar="DIR", help="local CLIP folder (transformers) for semantic alignment")
    run.add_argument("--vlm", metavar="DIR", help="local VLM folder (transformers) for body/semantic judging")
    run.add_argument("--probes", metavar="DIR", help="ActorWorld probe folder (default: shipped probes)")
    run.add_argument("--device", default="cpu", help="device for CLIP / VLM back-ends")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept suite reference paths and --videos files (links) that lead out of their folder",
    )
    _add_opens2v_run_arguments(run)

    rep = sub.add_parser("report", help="Table 2 / Table 3 layout report of one or more runs")
    rep.add_argument("runs", nargs="+", metavar="OUT", help="run folders, shown side by side")
    rep.add_argument("-o", "--out", help="report folder (default: OUT/report of the first run)")
    rep.add_argument(
        "--format", default="actorbench", choices=("actorbench", "opens2v"), help="report layout"
    )
    rep.add_argument("--domain", choices=("human", "single", "open"), help="opens2v: the leaderboard domain")
    rep.add_argument(
        "--opens2v-json",
        nargs="+",
        metavar="DIR",
        help="opens2v: folders of OpenS2V's own per-metric JSON files to merge in (one per run)",
    )
    rep.add_argument("--venue", default="", help="opens2v: the Venue column (e.g. Open-Source)")
    rep.add_argument(
        "--leaderboard", metavar="CSV", help="opens2v: OpenS2V's results_<Domain>.csv, appended as published"
    )

    val = sub.add_parser("validate", help="check a suite file and print its size")
    val.add_argument("suite")
    val.add_argument("--list", action="store_true", help="print every item's expected video file name")
    val.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept reference paths that lead out of the suite's folder",
    )

    imp = sub.add_parser("import-opens2v", help="an Actor-Bench suite from an OpenS2V-Eval JSON file")
    imp.add_argument("eval_json", metavar="EVAL_JSON", help="e.g. Human-Domain_Eval.json")
    imp.add_argument(
        "--images", required=True, metavar="DIR", help="OpenS2V-Eval folder img_paths are relative to"
    )
    imp.add_argument("-o", "--out", required=True, metavar="SUITE.yaml", help="suite file to write")
    imp.add_argument("--domain", default="human", choices=("human", "single", "open"))

    mk = sub.add_parser("make-suite", help="write the ActorWorld suite (held-out actors, 3 settings, 2 axes)")
    mk.add_argument("--out", required=True, help="YAML file to write")
    mk.add_argument("--subjects", type=int, default=75)
    mk.add_argument("--contextual", type=int, default=4, help="contextual prompts per subject")
    mk.add_argument("--storylines", type=int, default=1, help="3-shot storylines per subject")
    mk.add_argument("--frames", type=int, default=17)
    mk.add_argument("--size", type=int, default=64)
    mk.add_argument("--seed", type=int, default=0)


def _add_opens2v_run_arguments(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("OpenS2V-Eval metrics (on by default for suites from import-opens2v)")
    g.add_argument("--opens2v", action="store_true", help="score OpenS2V-Eval's metrics too")
    g.add_argument(
        "--opens2v-weights",
        metavar="DIR",
        help="local OpenS2V-Weight folder (CurricularFace, aesthetic MLP, insightface)",
    )
    g.add_argument(
        "--face-detector", help="insightface:DIR | dlib (default: the weights' insightface pack, else dlib)"
    )
    g.add_argument("--curricularface", metavar="FILE", help="glint360k_curricular_face_r101_backbone.bin")
    g.add_argument("--aes-clip", metavar="DIR", help="CLIP ViT-L/14 folder (transformers) for Aesthetics")
    g.add_argument(
        "--aes-mlp", metavar="FILE", help="LAION aesthetic predictor weights (aesthetic-model.pth)"
    )
    g.add_argument("--gme", metavar="DIR", help="gme-Qwen2-VL-7B-Instruct folder for GmeScore")
    g.add_argument(
        "--judge",
        metavar="DIR",
        help="local Qwen2-VL-family folder for NaturalScore / MotionSmoothness (not comparable)",
    )


def _opens2v_config(args: argparse.Namespace, suite_name: str) -> object | None:
    from wildactor.bench.opens2v import domain_of_suite
    from wildactor.bench.opens2v_scorer import OpenS2VConfig

    given = [
        args.opens2v_weights,
        args.face_detector,
        args.curricularface,
        args.aes_clip,
        args.aes_mlp,
        args.gme,
        args.judge,
    ]
    if not (args.opens2v or domain_of_suite(suite_name) or any(v is not None for v in given)):
        return None
    return OpenS2VConfig(
        weights=args.opens2v_weights,
        face_detector=args.face_detector,
        curricularface=args.curricularface,
        aes_clip=args.aes_clip,
        aes_mlp=args.aes_mlp,
        gme=args.gme,
        judge=args.judge,
        device=args.device,
    )


def _import_opens2v(args: argparse.Namespace) -> int:
    import yaml

    from wildactor.bench.opens2v import opens2v_suite
    from wildactor.bench.spec import load_suite

    suite, excluded = opens2v_suite(args.eval_json, args.images, args.out, args.domain)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Generated by: wildactor bench import-opens2v {args.eval_json} --images {args.images} --domain {args.domain}"
    ]
    lines += [f"# Left out ({len(excluded)} cases WildActor cannot generate):"]
    lines += [f"#   {cid}: {why}" for cid, why in excluded.items()]
    out.write_text(
        "\n".join(lines) + "\n" + yaml.safe_dump(suite, sort_keys=False, width=200, allow_unicode=True)
    )
    load_suite(out)  # the written suite must validate
    print(f"wrote {out}: {len(suite['subjects'])} cases (videos named <case_id>.mp4)")
    if excluded:
        print(f"left out {len(excluded)} cases WildActor cannot generate:")
        for cid, why in excluded.items():
            print(f"  {cid}: {why}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from wildactor.bench.runner import MetricConfig, RunConfig, run_bench
    from wildactor.bench.spec import load_suite
    from wildactor.errors import WildActorError

    suite = load_suite(args.suite, allow_outside_root=args.allow_outside_root)
    if args.videos is not None:
        source, default_name = "videos", Path(args.videos).name
    elif args.model is not None:
        source, default_name = "model", ("no-reference" if args.no_references else Path(args.model).name)
    else:
        source, default_name = "baseline", args.baseline
    if args.lora and source != "model":
        raise WildActorError("--lora needs --model")
    if args.no_references and source != "model":
        raise WildActorError("--no-references needs --model")
    try:
        cfg = RunConfig(
            method=args.method or default_name,
            source=source,
            params=args.params,
            videos_dir=args.videos,
            model_dir=args.model,
            lora=args.lora,
            baseline=args.baseline,
            no_references=args.no_references,
            num_frames=args.frames,
            size=args.size,
            steps=args.steps,
            allow_outside_root=args.allow_outside_root,
        )
        metrics = MetricConfig(
            face=args.face,
            clip=args.clip,
            vlm=args.vlm,
            probes=args.probes,
            device=args.device,
            opens2v=_opens2v_config(args, suite.name),
        )
    except ValueError as exc:
        raise WildActorError(str(exc)) from exc
    if args.videos is not None and not Path(args.videos).is_dir():
        raise WildActorError(f"videos folder not found: {args.videos}")
    counts = run_bench(
        suite, args.out, cfg, metrics, args.subjects, args.limit, progress=not args.no_progress
    )
    print(
        f"{cfg.method}: scored {counts['scored']}, skipped (already done) {counts['skipped']}, rejected {counts['rejected']}"
    )
    if counts["rejected"]:
        print(f"rejected items and reasons: {Path(args.out) / 'rejects.jsonl'}")
    return 0


def main(args: argparse.Namespace) -> int:
    from wildactor.errors import WildActorError

    cmd = getattr(args, "bench_command", None)
    if cmd == "run":
        return _run(args)
    if cmd == "report" and args.format == "opens2v":
        from wildactor.bench.report_opens2v import write_opens2v_report

        out = Path(args.out) if args.out else Path(args.runs[0]) / "report_opens2v"
        summaries = write_opens2v_report(
            args.runs, out, args.domain, args.opens2v_json, args.venue, leaderboard=args.leaderboard
        )
        for method, s in summaries.items():
            total = "n/a" if s["total_score"] is None else f"{100 * s['total_score']:.2f}%"
            why = "; ".join(f"{k}: {r}" for k, r in s["missing_for_total"].items())
            print(
                f"{method}: TotalScore {total}"
                + (f" (missing {why})" if why else "")
                + f", {s['n_cases']} cases"
            )
        print(f"OpenS2V-format report: {out} (results_*.csv, <method>_*.json, <method>/ per-metric JSON)")
        return 0
    if cmd == "report":
        from wildactor.bench.report import write_report

        out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
        rep = write_report(args.runs, out)
        print(
            f"report of {len(rep['runs'])} run(s): {out / 'report.md'} (+ table2.csv, table3.csv, report.json, PNG plots)"
        )
        return 0
    if cmd == "validate":
        from wildactor.bench.spec import load_suite

        suite = load_suite(args.suite, allow_outside_root=args.allow_outside_root)
        items = suite.items()
        by_axis = {a: sum(it.axis == a for it in items) for a in ("narrative", "contextual")}
        print(
            f"{suite.name}: {len(suite.subjects)} subjects, {len(items)} items ({by_axis['narrative']} narrative shots, {by_axis['contextual']} contextual)"
        )
        for it in items if args.list else items[:3]:
            print(f"  {it.item_id}.mp4")
        if not args.list and len(items) > 3:
            print(f"  ... ({len(items) - 3} more; --list prints every video name a system must produce)")
        return 0
    if cmd == "import-opens2v":
        return _import_opens2v(args)
    if cmd == "make-suite":
        import yaml

        from wildactor.bench.actorworld import make_actorworld_suite

        try:
            data = make_actorworld_suite(
                args.subjects, args.contextual, args.storylines, args.frames, args.size, args.seed
            )
        except ValueError as exc:
            raise WildActorError(str(exc)) from exc
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# Generated by: wildactor bench make-suite --subjects {args.subjects} --contextual {args.contextual} --storylines {args.storylines} --frames {args.frames} --size {args.size} --seed {args.seed}\n"
        out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=200))
        print(f"wrote {out}: {len(data['subjects'])} subjects")
        return 0
    raise WildActorError(
        "choose a bench subcommand: run | report | validate | make-suite | import-opens2v (see wildactor bench --help)"
    )
