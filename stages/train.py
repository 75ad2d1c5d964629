"""Stage `train`: pre-train GraphMERT on the leafy-chain samples (params.yaml:model, train, samples).

    dvc repro train                                  # tiny preset, CPU, the default
    dvc exp run -S train.steps=10000 -S model.preset=base
    torchrun --nproc_per_node=2 stages/train.py      # DDP outside DVC

Writes models/model.safetensors, models/config.json, metrics/train.json and
dvclive/; resumes from checkpoints/ when a run of the same config was killed.
"""

from graphmer import guarded
from graphmer.config import ModelConfig, load_section
from graphmer.tokenizer import load
from graphmer.train import train


def main() -> None:
    model, cfg, samples = load_section("model"), load_section("train"), load_section("samples")
    paths = load_section("paths")
    model_cfg = ModelConfig.from_params(model, samples, vocab_size=load(paths.tokenizer).get_vocab_size())
    m = train(model_cfg, cfg, samples, paths)
    if m:
        print(
            f"train: {m['step']} steps, loss {m['loss']:.3f}, dev MLM acc {m.get('dev/mlm_acc', 0):.3f}, "
            f"dev MNM acc {m.get('dev/mnm_acc', 0):.3f}"
        )


if __name__ == "__main__":
    guarded("train", main, __doc__)
