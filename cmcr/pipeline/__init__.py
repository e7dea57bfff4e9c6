"""One command from raw data to weights on the Hub: what `python scripts/train.py` runs.

    sources → features (cached, cmcr.data.extract) → both connections (cmcr.training) → held-out
    evaluation (`evaluate`) → space folder + model card (`publish`) → Hub (cmcr.hub)

The run is described by one YAML/TOML file (configs/small.yaml, configs/paper.yaml, configs/tiny.yaml) plus
`--set section.key=value` overrides (`config`). Everything it writes goes under `output`:
`features/` (the memory, reused while sources, weights and settings stay the same) and `space/`
(the folder that is pushed: config.json, model.safetensors, README.md, curves, training.json).
What can be trained depends on what data there is, and the run says so rather than pretend
(`plan`); `run` ties the steps together.
"""

from cmcr.pipeline.config import PipelineConfig, build_config, load_pipeline_config
from cmcr.pipeline.publish import TrainedSpace, push_space, write_space_folder
from cmcr.pipeline.run import PipelineResult, run_pipeline, train_and_publish

__all__ = ["PipelineConfig", "PipelineResult", "TrainedSpace", "build_config", "load_pipeline_config",
           "push_space", "run_pipeline", "train_and_publish", "write_space_folder"]
