"""A new space's first commit, as on the Hub: README.md with its card, and .gitattributes."""

import hashlib
from pathlib import Path
from typing import get_args

import yaml

from spacehub.builder.dockerfile import DEFAULT_SDK_VERSIONS
from spacehub.core.space_config import DEFAULT_APP_FILE, Color
from spacehub.platform.git.repos import DEFAULT_BRANCH
from spacehub.platform.git.writing import Author, PutBlob, create_commit, write_blob

EMOJIS = ("🚀", "🔥", "🌍", "🐢", "🦀", "📊", "🎨", "🧠", "⚡", "🌸", "🐨", "💻", "🏃", "📚", "🎵")
# The patterns huggingface.co writes into a new repository's .gitattributes, in its order.
LFS_PATTERNS = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
)
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS
)
CONFIG_REFERENCE = (
    "Check out the configuration reference at "
    "https://huggingface.co/docs/hub/spaces-config-reference\n"
)


def readme(name: str, sdk: str) -> str:
    """README.md with the front matter the Hub writes; emoji and colours picked from the name."""
    digest = hashlib.sha256(name.encode()).digest()
    colors: tuple[str, ...] = get_args(Color)
    color_from = colors[digest[1] % len(colors)]
    color_to = colors[(digest[1] + 1 + digest[2] % (len(colors) - 1)) % len(colors)]
    lines = [
        f"title: {_scalar(name)}",
        f"emoji: {EMOJIS[digest[0] % len(EMOJIS)]}",
        f"colorFrom: {color_from}",
        f"colorTo: {color_to}",
        f"sdk: {sdk}",
    ]
    if sdk in DEFAULT_SDK_VERSIONS:
        lines.append(f"sdk_version: {DEFAULT_SDK_VERSIONS[sdk]}")
        lines.append(f"app_file: {DEFAULT_APP_FILE[sdk]}")
    lines.append("pinned: false")
    return "---\n" + "\n".join(lines) + "\n---\n\n" + CONFIG_REFERENCE


def _scalar(text: str) -> str:
    """`text` as YAML reads it back as the same string (names like `1.0` or `yes` are quoted)."""
    return text if yaml.safe_load(text) == text else f'"{text}"'


def make_first_commit(repo: Path, name: str, sdk: str, author: Author) -> str:
    """Commit README.md and .gitattributes on `main` of the new, empty repository."""
    operations = [
        PutBlob(".gitattributes", write_blob(repo, GITATTRIBUTES.encode())),
        PutBlob("README.md", write_blob(repo, readme(name, sdk).encode())),
    ]
    return create_commit(
        repo, f"refs/heads/{DEFAULT_BRANCH}", operations, "initial commit", author, None, None
    )
