"""The starter app a new space's page offers for each sdk: copies of examples/ kept as data."""

from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parents[1] / "templates" / "starters"
# Where each starter comes from: a test keeps the copies equal to examples/.
EXAMPLE_FOLDERS = {
    "gradio": "gradio-greet",
    "streamlit": "streamlit-square",
    "docker": "docker-fastapi",
    "static": "static-site",
}
# The order a reader adds them in.
FIRST = ("Dockerfile", "requirements.txt")


@cache
def starter_files(sdk: str) -> dict[str, str]:
    """File name → content of the sdk's starter app ({} for an unknown sdk)."""
    folder = FOLDER / sdk
    if sdk not in EXAMPLE_FOLDERS or not folder.is_dir():
        return {}
    paths = sorted(folder.iterdir(), key=lambda path: (path.name not in FIRST, path.name))
    return {path.name: path.read_text() for path in paths if path.is_file()}
