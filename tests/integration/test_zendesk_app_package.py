"""The installable Zendesk app (issue 8, item 1): `switchboard zendesk-app build` makes a zip
whose manifest parses, names every app setting of the admin guide, and has the structure
Zendesk documents for a ZAF v2 server-side app (location URL, frameworkVersion, signedUrls,
parameters with translated labels, the required assets); every location URL it names is a page
a real daemon serves only to a Zendesk-signed request."""

import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from daemon.app import Daemon
from tests.daemons import running
from tests.processes import ROOT
from tests.zaf import INSTALLATION_ID, key_pair, zaf_token

URL = "https://switchboard.acme.example"
# The admin guide's app settings, under the guide's own names, and what the app also needs.
GUIDE_SETTINGS = {
    "Create ticket after minutes",
    "Default entry point phone number",
    "Contact attribute name containing Zendesk Ticket Number",
}
ALSO = {"Amazon Connect instance URL", "Media-less mode"}
# Zendesk's parameter types for app settings
PARAMETER_TYPES = {"text", "password", "checkbox", "url", "number", "multiline", "hidden", "oauth"}


def build(out: Path, url: str = URL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon.cli",
            "zendesk-app",
            "build",
            "--out",
            str(out),
            "--url",
            url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("zip")
    done = build(out)
    assert done.returncode == 0, done.stderr
    return zipfile.ZipFile(done.stdout.strip())


def read_json(package: zipfile.ZipFile, name: str) -> Any:
    return json.loads(package.read(name))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_zip_holds_exactly_the_app_files(package: zipfile.ZipFile) -> None:
    assert sorted(package.namelist()) == [
        "assets/icon_top_bar.svg",
        "assets/logo-small.png",
        "assets/logo.png",
        "manifest.json",
        "translations/en.json",
    ]
    assert png_size(package.read("assets/logo.png")) == (320, 320)
    assert png_size(package.read("assets/logo-small.png")) == (128, 128)
    assert package.read("assets/icon_top_bar.svg").startswith(b"<svg")


def test_the_manifest_is_a_signed_server_side_app_in_the_top_bar_and_sidebars(
    package: zipfile.ZipFile,
) -> None:
    manifest = read_json(package, "manifest.json")
    assert manifest["frameworkVersion"] == "2.0"
    assert manifest["signedUrls"] is True
    assert manifest["defaultLocale"] == "en"
    assert {"name", "email"} <= set(manifest["author"])
    assert manifest["version"].count(".") == 2
    top_bar = manifest["location"]["support"]["top_bar"]
    assert top_bar["url"] == f"{URL}/zendesk/app"  # the daemon serves the page
    assert set(manifest["location"]) == {"support"}
    # the sidebars tell the top bar which ticket or user is open (attach to current, create)
    for where in ("ticket_sidebar", "user_sidebar"):
        assert manifest["location"]["support"][where]["url"] == f"{URL}/zendesk/sidebar"
    # Zendesk's voice.dialout (click-to-dial) reaches the background location, which forwards it
    background = manifest["location"]["support"]["background"]
    assert background == {"url": f"{URL}/zendesk/background"}


def test_every_app_setting_of_the_guide_is_a_translated_parameter(
    package: zipfile.ZipFile,
) -> None:
    manifest = read_json(package, "manifest.json")
    translations = read_json(package, "translations/en.json")["app"]
    for key in ("name", "short_description", "long_description", "installation_instructions"):
        assert translations[key], key
    parameters = manifest["parameters"]
    names = [p["name"] for p in parameters]
    assert len(names) == len(set(names))
    labels = {}
    for p in parameters:
        assert p["type"] in PARAMETER_TYPES, p
        text = translations["parameters"][p["name"]]
        assert text["label"] and text["helpText"], p["name"]
        labels[text["label"]] = p
    assert set(labels) == GUIDE_SETTINGS | ALSO
    assert labels["Create ticket after minutes"]["default"] == 0
    assert labels["Contact attribute name containing Zendesk Ticket Number"]["default"] == (
        "zendesk_ticket"
    )
    assert labels["Amazon Connect instance URL"]["required"] is True
    assert labels["Media-less mode"]["type"] == "checkbox"


@pytest.mark.parametrize(
    "url", ["http://switchboard.acme.example", "https://acme.example/path", "switchboard", ""]
)
def test_the_build_refuses_an_address_zendesk_cannot_frame_safely(tmp_path: Path, url: str) -> None:
    done = build(tmp_path, url)
    assert done.returncode != 0
    assert "https://" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    _, public = key_pair()
    async with running(
        zendesk_app_public_key=public, zendesk_app_installation_id=INSTALLATION_ID, app_port=0
    ) as d:
        yield d


async def test_every_location_is_served_only_to_a_zendesk_signed_request(
    package: zipfile.ZipFile, daemon: Daemon
) -> None:
    account = daemon.settings.zendesk_url
    assert account is not None
    signed, forged = zaf_token(account, 4242), zaf_token(account, 4242, key="attacker")
    locations = read_json(package, "manifest.json")["location"]["support"]
    served = {}
    async with aiohttp.ClientSession() as http:
        for where, spec in locations.items():
            # Zendesk POSTs the location's URL with its signed token (signedUrls)
            path = urlsplit(spec["url"]).path
            url = f"http://127.0.0.1:{daemon.app_port}{path}?origin={account}&app_guid=g-{where}"
            for token, status in ((signed, 200), (forged, 401), (None, 401)):
                form = {} if token is None else {"token": token}
                async with http.post(url, data=form) as response:
                    assert response.status == status, (where, status, await response.text())
                    assert response.headers["Cache-Control"] == "no-store"
                    if status == 200:
                        served[where] = await response.text()
    assert set(served) == {"top_bar", "ticket_sidebar", "user_sidebar", "background"}
    # the background page only forwards click-to-dial: it loads ZAF and holds no session
    background = served["background"]
    assert "startBackground(ZAFClient.init())" in background
    assert "switchboard-config" not in background and "token" not in background
    assert "startApp" in served["top_bar"]
