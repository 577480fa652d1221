import pytest
import torch

from infomug.models import ModelConfig

# One tiny config for the model and objective tests, so each runs well under a second:
# 16x16 images in 4-pixel patches (16 patches), width 32.
TINY = dict(
    img_size=16,
    patch_size=4,
    embed_dim=32,
    depth=1,
    num_heads=2,
    decoder_width=32,
    decoder_depth=1,
    decoder_num_heads=2,
    caption_width=32,
    caption_num_heads=2,
    vocab_size=300,
    context_length=16,
    text_width=32,
    text_depth=1,
    text_num_heads=2,
    projection_dim=16,
)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig.from_dict(TINY)


# Folders whose tests train and measure tiny models: tiny matrices gain nothing from a second thread, and
# on a busy machine waiting for it costs ~10x. The torchrun processes of the DDP tests run one thread each
# too (OMP_NUM_THREADS=1).
ONE_THREAD_FOLDERS = frozenset({"ablation", "finetune", "measure", "reliability", "train"})


@pytest.fixture(autouse=True, scope="module")
def one_thread(request):
    if not ONE_THREAD_FOLDERS & set(request.path.relative_to(request.config.rootpath / "tests").parts[:-1]):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
