"""The model card (README.md) of a space, as the Hub shows it: a `huggingface_hub.ModelCard`.

A space on the Hub is only as useful as what its card says: which frozen encoders (and which of
their weights) the heads expect, how well the heads did on held-out data next to chance, how
training went, how to load it, and whose work it builds on. Everything is rendered from plain data
(config.json and what the pipeline measured), so the card can never disagree with the weights. The
metadata block uses the fields the Hub understands: `library_name`, `license`, `pipeline_tag`,
`base_model` (the encoders' Hub repos), `datasets` and `model-index` (the held-out results).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from cmcr.evaluation.metrics import markdown_table
from cmcr.models.registry import ENCODER_MODALITIES, ENCODERS

PIPELINE_TAG = "feature-extraction"
REPORTED_METRICS = ("R@1", "R@5", "R@10", "mAP")

TAGS = ("cmcr", "c-mcr", "ex-mcr", "cross-modal-retrieval", "multimodal", "clip", "clap", "ulip",
        "audio", "image", "3d", "point-cloud")
CREDITS = """\
- **C-MCR**: Wang et al., *Connecting Multi-modal Contrastive Representations*, NeurIPS 2023.
- **Ex-MCR**: Zhang, Wang et al., *Extending Multi-modal Contrastive Representations*, NeurIPS 2024.
- **CLIP**: Radford et al., 2021 (OpenAI), loaded with [open_clip](https://github.com/mlfoundations/open_clip).
- **CLAP**: Wu et al., 2023 (LAION), [laion_clap](https://github.com/LAION-AI/CLAP).
- **ULIP-2**: Xue et al., 2023 (Salesforce), PointBERT backbone."""
OWN_HEADS = ("The trained heads here are released under Apache-2.0, the license of C-MCR Studio. The frozen "
             "encoders are not part of this repo: each keeps its own license; check it before use.")


def space_card(
    config: Mapping,
    *,
    evaluation: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    curves: Mapping[str, str] | None = None,
    run_config: Mapping | None = None,
    notes: Sequence[str] = (),
    repo_id: str | None = None,
) -> ModelCard:
    """The card of a space whose config.json is `config`.

    `evaluation`: connection → {row name → metrics} (None: not evaluated here, e.g. released
    weights); `curves`: connection → PNG file name in the folder; `run_config`: the resolved
    pipeline configuration; `notes`: what the reader must know (missing modalities, fallbacks,
    tiny profile). A space with `provenance` (released weights, `cmcr.models.registry`) gets their
    licence, credit and pinned source files instead of ours.
    """
    leaves, base = config.get("leaves", []), config.get("base")
    title = (f"Ex-MCR unified space: {', '.join(leaves)} → {base}" if config["method"] == "ex-mcr"
             else f"C-MCR space: {' ↔ '.join(leaves)}")
    sections = [
        f"# {title}",
        _summary(config),
        _notes(notes),
        _provenance(config.get("provenance")),
        "" if evaluation is None else "## Evaluation\n\n" + _evaluation(evaluation),
        "## Training curves\n\n" + "\n".join(f"![{name}]({file})" for name, file in curves.items()) if curves else "",
        "## Frozen encoders\n\n" + _encoders(config),
        "## How to use\n\n" + _usage(config, repo_id),
        "## Training configuration\n\n```yaml\n" + yaml.safe_dump(dict(run_config), sort_keys=False) + "```"
        if run_config else "",
        "## License and credits\n\n" + _license(config.get("provenance")) + "\n\n" + CREDITS,
    ]
    body = "\n\n".join(section for section in sections if section) + "\n"
    data = card_data(config, evaluation, model_name=repo_id or title)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def render_model_card(config: Mapping, **options) -> str:
    """README.md text of `space_card(config, **options)`."""
    return str(space_card(config, **options))


def card_data(config: Mapping, evaluation: Mapping | None = None, *, model_name: str) -> ModelCardData:
    """The metadata block: licence (the release's for released weights), tags, the encoders' Hub
    repos as `base_model` (full-profile encoders only: toy weights have none), the training
    datasets, and the held-out results as `model-index`."""
    provenance = config.get("provenance")
    full = [name for name, entry in config["encoders"].items() if entry.get("profile") == "full"]
    base_models = [ENCODERS[name].hub_model for name in full if name in ENCODERS and ENCODERS[name].hub_model]
    datasets = [entry["id"] for entry in config.get("datasets", []) if isinstance(entry, Mapping) and "id" in entry]
    return ModelCardData(
        library_name="cmcr", license=provenance["license"].lower() if provenance else "apache-2.0",
        pipeline_tag=PIPELINE_TAG, tags=sorted({*TAGS, config["method"]}), base_model=base_models or None,
        datasets=datasets or None, model_name=model_name, eval_results=_eval_results(evaluation) or None,
    )


def _eval_results(evaluation: Mapping | None) -> list[EvalResult]:
    """One result per reported metric of every held-out retrieval direction (chance rows left out)."""
    results = []
    for connection, rows in (evaluation or {}).items():
        for direction, metrics in rows.items():
            if direction.startswith("chance"):
                continue
            results += [EvalResult(task_type=PIPELINE_TAG, task_name=f"cross-modal retrieval, {direction}",
                                   dataset_type="held-out", dataset_name=f"held-out items of {connection}",
                                   metric_type=metric.lower().replace("@", "_at_"), metric_name=metric,
                                   metric_value=float(metrics[metric]))
                        for metric in REPORTED_METRICS if isinstance(metrics.get(metric), (int, float))]
    return results


def _summary(config: Mapping) -> str:
    if config["method"] == "ex-mcr":
        return (f"Projection heads that map the embeddings of {', '.join(config['leaves'])} into the "
                f"space of the frozen base encoder **{config['base']}** (which passes through "
                "unchanged), trained without any paired data between the modalities they connect "
                f"(Ex-MCR). Audio ↔ image ↔ 3D ↔ text retrieval works in the {config['dim']}-d base space.")
    return (f"Two projection heads that map {' and '.join(config['leaves'])} embeddings into one "
            f"{config['dim']}-d space (C-MCR), trained through their overlapping modality only.")


def _provenance(provenance: Mapping | None) -> str:
    if not provenance:
        return ""
    rows = "\n".join(f"| [{file['path']}]({file['url']}) | {file['repo']} | `{file['commit']}` | `{file['blob']}` |"
                     for file in provenance["files"])
    return (f"## Provenance\n\nThese are the weights of {provenance['title']} ([paper]({provenance['paper']})), "
            f"by {provenance['credit']}, converted to this format without retraining: the official "
            "state dicts were read with `torch.load(weights_only=True)` into heads with the official key layout "
            "and saved as safetensors. Source files, pinned by git blob id:\n\n"
            "| file | repository | commit | git blob id |\n|---|---|---|---|\n" + rows +
            "\n\nCheck them against the official inference example with `python scripts/check_official.py`.")


def _license(provenance: Mapping | None) -> str:
    if not provenance:
        return OWN_HEADS
    return (f"The heads are by {provenance['credit']}, released under [{provenance['license'].replace('-', ' ')}]"
            f"({provenance['license_url']}); redistributing them requires this attribution. The frozen encoders "
            "are not part of this repo: each keeps its own license; check it before use.")


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "## Read this first\n\n" + "\n".join(f"- {note}" for note in notes)


def _evaluation(evaluation: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    if not evaluation:
        return "No held-out evaluation was possible for this run (too few items)."
    parts = ["Recall@k and mAP in percent, median rank (MedR) in items; *chance* is a random "
             "ranking of the same gallery. Held-out overlap items were excluded from training."]
    for name, rows in evaluation.items():
        table = (markdown_table(rows, title="query → gallery") if rows else
                 "Too few items to hold any out (2 needed, with 2 left to train on).")
        parts.append(f"### {name}\n\n{table}")
    return "\n\n".join(parts)


def _encoders(config: Mapping) -> str:
    lines = ["| encoder | modalities | dim | weights | revision | commit | profile |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in config["encoders"].items():
        lines.append(f"| {name} | {', '.join(entry.get('modalities', []))} | {entry.get('dim')} | "
                     f"{entry.get('weights', 'n/a')} | {entry.get('revision') or '—'} | "
                     f"{entry.get('commit') or '—'} | {entry.get('profile', 'n/a')} |")
    return ("The heads expect L2-normalised embeddings from exactly these encoders and weights.\n\n"
            + "\n".join(lines))


def _usage(config: Mapping, repo_id: str | None) -> str:
    where = repo_id or "path/to/this/folder"
    leaf = config["leaves"][0]
    modality = next((m for m in ENCODER_MODALITIES.get(leaf, ()) if m != "text"), "text")
    return f"""```python
import cmcr
from cmcr.models.encoders import build_encoder

space = cmcr.UnifiedSpace.from_pretrained("{where}")  # safetensors + config.json only
encoder = build_encoder("{leaf}", profile="{config['encoders'][leaf].get('profile', 'full')}")
features = encoder.embed("{modality}", batch)           # decoded inputs, see cmcr.data.media
z = space.project(encoder="{leaf}", modality="{modality}", features=features)  # unit rows
```

In C-MCR Studio: `CMCR_SPACE_REPO={where} python app.py` (or `python app.py --space {where}`)."""
