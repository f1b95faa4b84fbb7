"""An HTML template for ``dvc plots show`` that renders with no network.

DVC's default page loads vega, vega-lite and vega-embed from a CDN. This module takes the same libraries
from the npm registry (``npm pack``, pinned versions, integrity checked by npm) and inlines them into a
template with DVC's ``{plot_divs}`` placeholder; ``.dvc/config`` points ``plots.html_template`` at it.

    python -m fairgender_utils.offline_plots      # writes .dvc/plots/offline.html
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from fairgender_utils.paths import REPO_ROOT

LIBRARIES = {  # npm package@version -> file inside the tarball
    "vega@5.33.1": "package/build/vega.min.js",
    "vega-lite@5.23.0": "package/build/vega-lite.min.js",
    "vega-embed@6.29.0": "package/build/vega-embed.min.js",
}
TEMPLATE = REPO_ROOT / ".dvc" / "plots" / "offline.html"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>fairgender plots</title>
{libraries}
<style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def fetch(cache: Path) -> dict[str, str]:
    """The JavaScript source of each library, downloaded with ``npm pack`` into ``cache`` once."""
    cache.mkdir(parents=True, exist_ok=True)
    sources = {}
    for spec, member in LIBRARIES.items():
        name, version = spec.rsplit("@", 1)
        tgz = cache / f"{name}-{version}.tgz"
        if not tgz.exists():
            try:
                subprocess.run(["npm", "pack", spec, "--silent"], cwd=cache, check=True, capture_output=True,
                               text=True)
            except (OSError, subprocess.CalledProcessError) as err:
                raise RuntimeError(f"npm pack {spec} failed ({err}); npm and the npm registry are needed "
                                   "once to build the offline plots template") from None
        with tarfile.open(tgz) as tar:
            sources[spec] = tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
    return sources


def build(out: Path = TEMPLATE) -> Path:
    """Write the template with the libraries inlined."""
    libs = fetch(out.parent / "npm")
    safe = {spec: src.replace("</script>", "<\\/script>") for spec, src in libs.items()}
    scripts = "\n".join(f"<script>/* {spec} */\n{src}\n</script>" for spec, src in safe.items())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(PAGE.format(libraries=scripts), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE))
