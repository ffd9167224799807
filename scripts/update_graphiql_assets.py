#!/usr/bin/env python3
"""Copies GraphiQL's browser assets from the npm registry into graphql_api/graphiql/static/vendor/.

    python scripts/update_graphiql_assets.py

GraphiQL must work without internet access, so the page loads pinned copies served by the
server instead of a CDN. This script is the only writer of ``static/vendor/`` and of
``vendor.json`` (the page reads its script and stylesheet tags, with their Subresource
Integrity hashes, from it). It fetches each tarball with ``npm pack`` and refuses it unless its
sha512 equals both the pin below and the registry's ``dist.integrity``; it then keeps only the
files the page loads, each package's LICENSE beside them.

To change a version: edit its spec in ``TARBALLS`` and ``BUNDLES``, run the script once (it
fails, printing the registry's integrity for the new version), check that value, pin it, run
it again and commit ``graphql_api/graphiql/``.
"""

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

GRAPHIQL = Path(__file__).resolve().parent.parent / "graphql_api" / "graphiql"
VENDOR = GRAPHIQL / "static" / "vendor"
MANIFEST = GRAPHIQL / "vendor.json"

TARBALLS = {
    "react@18.2.0": (
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ=="
    ),
    "react-dom@18.2.0": (
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g=="
    ),
    "js-cookie@3.0.5": (
        "sha512-cEiJEAEoIbWfCZYKWhVwFuvPX1gETRYPw6LlaTKoxD3s2AkXzkCjnp6h0V77ozyqj0jakteJ4YqDJT830+lVGw=="
    ),
    "graphiql@3.8.3": (
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw=="
    ),
    "@graphiql/plugin-explorer@1.0.2": (
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q=="
    ),
    # Only for its LICENSE: the explorer plugin's UMD file bundles it.
    "graphiql-explorer@0.9.0": (
        "sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A=="
    ),
}
"""npm's ``dist.integrity`` of every tarball this script reads, checked before anything is copied."""


@dataclass(frozen=True)
class Licence:
    spec: str
    path: str
    """Inside the tarball, without its ``package/`` prefix."""
    saved_as: str = "LICENSE.txt"
    """A suffix the server knows, so browsers show it as text."""


@dataclass(frozen=True)
class Bundle:
    """One package whose files the page loads, from one versioned directory."""

    spec: str
    files: tuple[str, ...]
    """Inside the tarball, in the order the page loads them."""
    licences: tuple[Licence, ...] = ()
    """Where the package's own tarball has a LICENSE, empty: that one is copied."""

    @property
    def name(self) -> str:
        return self.spec.rpartition("@")[0]

    @property
    def version(self) -> str:
        return self.spec.rpartition("@")[2]

    @property
    def directory(self) -> str:
        """Versioned, so the server may tell browsers to cache its files for good."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"

    def licence_sources(self) -> tuple[Licence, ...]:
        return self.licences or (Licence(self.spec, "LICENSE"),)


BUNDLES = (
    Bundle("react@18.2.0", ("umd/react.production.min.js",)),
    Bundle("react-dom@18.2.0", ("umd/react-dom.production.min.js",)),
    Bundle("js-cookie@3.0.5", ("dist/js.cookie.min.js",)),
    Bundle("graphiql@3.8.3", ("graphiql.min.css", "graphiql.min.js")),
    Bundle(
        "@graphiql/plugin-explorer@1.0.2",
        ("dist/style.css", "dist/index.umd.js"),
        # Its tarball ships no LICENSE; package.json says MIT, and it lives in graphiql's repository
        # (graphql/graphiql), whose LICENSE graphiql's tarball carries.
        licences=(
            Licence("graphiql@3.8.3", "LICENSE"),
            Licence("graphiql-explorer@0.9.0", "LICENSE", "LICENSE.graphiql-explorer.txt"),
        ),
    ),
)


class UpdateError(Exception):
    pass


def sri(data: bytes, algorithm: str) -> str:
    """A Subresource Integrity value, the form npm's ``dist.integrity`` also takes."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def npm(*args: str) -> str:
    done = subprocess.run(["npm", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpdateError(f"npm {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def fetch_tarball(spec: str, into: Path) -> bytes:
    """The tarball of ``spec``, refused unless its sha512 is the pinned one and the registry's."""
    registry: str = json.loads(npm("view", spec, "dist.integrity", "--json"))
    pinned = TARBALLS.get(spec)
    if pinned != registry:
        raise UpdateError(f"{spec}: the registry says {registry}, the pin {pinned}; check, then pin it")
    packed: str = json.loads(npm("pack", spec, "--json", "--pack-destination", str(into)))[0]["filename"]
    data = (into / packed).read_bytes()
    if sri(data, "sha512") != pinned:
        raise UpdateError(f"{spec}: the downloaded tarball's sha512 is not the pinned {pinned}")
    return data


def member(tarball: bytes, path: str, spec: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        try:
            extracted = archive.extractfile(f"package/{path}")
        except KeyError:
            extracted = None
        if extracted is None:
            raise UpdateError(f"{spec} has no file {path}")
        return extracted.read()


def update() -> list[dict[str, object]]:
    """Rewrites static/vendor/ from the registry; returns the manifest's bundles."""
    with tempfile.TemporaryDirectory(prefix="graphiql-assets-") as tmp:
        tarballs = {spec: fetch_tarball(spec, Path(tmp)) for spec in TARBALLS}
    staged = VENDOR.with_name("vendor.staged")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    manifest: list[dict[str, object]] = []
    try:
        for bundle in BUNDLES:
            directory = staged / bundle.directory
            directory.mkdir()
            files = []
            for path in bundle.files:
                data = member(tarballs[bundle.spec], path, bundle.spec)
                name = Path(path).name
                (directory / name).write_bytes(data)
                files.append({"name": name, "integrity": sri(data, "sha384")})
            for licence in bundle.licence_sources():
                (directory / licence.saved_as).write_bytes(
                    member(tarballs[licence.spec], licence.path, licence.spec)
                )
            manifest.append(
                {
                    "package": bundle.name,
                    "version": bundle.version,
                    "tarball_integrity": TARBALLS[bundle.spec],
                    "directory": bundle.directory,
                    "files": files,
                    "licences": [licence.saved_as for licence in bundle.licence_sources()],
                }
            )
        # Swapped in whole, so a failure part-way leaves the committed assets as they were.
        shutil.rmtree(VENDOR, ignore_errors=True)
        staged.rename(VENDOR)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return manifest


def main() -> int:
    try:
        bundles = update()
    except UpdateError as error:
        print(f"update_graphiql_assets: {error}", file=sys.stderr)
        return 1
    document = {"generated_by": "scripts/update_graphiql_assets.py; do not edit", "bundles": bundles}
    MANIFEST.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for path in sorted(VENDOR.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>10,}  {path.relative_to(GRAPHIQL)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
