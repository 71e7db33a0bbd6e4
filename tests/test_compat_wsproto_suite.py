"""wsproto 1.3.2's own test suite, run against wsproto_core under ``compat.install()``.

The suite comes from wsproto's sdist, which carries its tests; nothing of it is
copied into this repository. The sdist is fetched with pip at test time (and
cached in ``WSPROTO_CORE_SDIST_CACHE``, by default a directory under the system
temporary directory), checked against its pinned SHA-256, unpacked, and its
``tests/`` run in a subprocess with a small pytest plugin that calls
``wsproto_core.compat.install()`` before any test module is imported, records
each test's outcome, and reports whether the real wsproto was loaded after all.

Every test must pass except those listed in :data:`EXPECTED_FAILURES`, each with
its reason (a safety exception documented in docs/reference/differences.md, or
a wsproto internal that nobody outside wsproto uses). A listed test that starts
passing fails this module too, so the list stays exact.

Without registry access the suite cannot be fetched: the tests skip, saying so,
except in CI (``CI`` or ``WSPROTO_CORE_CI`` set), where that is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

WSPROTO_VERSION = "1.3.2"
SDIST_NAME = f"wsproto-{WSPROTO_VERSION}.tar.gz"
#: The SHA-256 that PyPI publishes for the sdist: what we run is what was reviewed.
SDIST_SHA256 = "b86885dcf294e15204919950f666e06ffc6c7c114ca900b060d6e16293528294"

#: wsproto's test files that this job runs.
TEST_FILES = (
    "tests/test_client.py",
    "tests/test_server.py",
    "tests/test_connection.py",
    "tests/test_handshake.py",
    "tests/test_extensions.py",
    "tests/test_permessage_deflate.py",
    "tests/test_frame_protocol.py",
)

#: Seconds for fetching the sdist, and for running the whole suite.
FETCH_TIMEOUT = 180
RUN_TIMEOUT = 300

_IN_CI = bool(os.environ.get("CI") or os.environ.get("WSPROTO_CORE_CI"))

# ----------------------------------------------------------------------------- expectations

#: Tests of wsproto's internal parser stages (``Buffer``, ``MessageDecoder``,
#: ``FrameDecoder``), which take wsproto's private intermediate objects. No
#: program outside wsproto builds them: frameworks use ``Connection`` and
#: ``WSConnection``, and extensions see the proto object only as an opaque
#: argument. Listed by test class; every test of each class is expected to fail.
OUT_OF_SCOPE_CLASSES: dict[str, str] = {
    "tests/test_frame_protocol.py::TestBuffer": "wsproto's private byte buffer of its parser",
    "tests/test_frame_protocol.py::TestMessageDecoder": "wsproto's private message-assembly stage",
    "tests/test_frame_protocol.py::TestFrameDecoder": "wsproto's private frame-decoding stage",
}

_DECODER_EXTENSIONS = "tests/test_frame_protocol.py::TestFrameDecoderExtensions::"
_DECODER_HOOKS = (
    "drives wsproto's private FrameDecoder stage directly; the same extension hooks are called through "
    "FrameProtocol and Connection, which these files test"
)
_BOUNDED_INFLATION = (
    "replaces the private zlib decompressor with a stand-in whose decompress() takes no max_length; "
    "inflation bounded by max_message_size needs it (wsproto inflates without bound)"
)
_RFC7692_PARAMETERS = (
    "RFC 7692 section 7.1: an element with an unknown parameter must be declined by a server and must "
    "fail the connection on a client; wsproto enables the extension with its defaults instead, so the "
    "two ends may disagree about compression"
)

#: Tests expected to fail, by test id, with the reason.
EXPECTED_FAILURES: dict[str, str] = {
    "tests/test_permessage_deflate.py::TestPerMessageDeflate::test_accept_ignores_rubbish": _RFC7692_PARAMETERS,
    "tests/test_permessage_deflate.py::TestPerMessageDeflate::test_finalize_ignores_rubbish": _RFC7692_PARAMETERS,
    "tests/test_permessage_deflate.py::TestPerMessageDeflate::test_inbound_bad_zlib_decoder_end_state": (
        _BOUNDED_INFLATION
    ),
    _DECODER_EXTENSIONS + "test_completion_error_handling": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_frame_completion": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_header_error_handling": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_no_frame_completion_when_not_wanted": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_no_payload_processing_when_not_wanted": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_payload_error_handling": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_payload_processing": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_rsv_bit": _DECODER_HOOKS,
    _DECODER_EXTENSIONS + "test_wrong_rsv_bit": _DECODER_HOOKS,
}

#: Tests that fail for differences that are not safety exceptions and are not
#: resolved yet (issue 13), each with what differs. This list only shrinks.
NOT_YET_COMPATIBLE: dict[str, str] = {}


def _expected_failure(nodeid: str) -> str | None:
    """The reason ``nodeid`` is expected to fail, or ``None`` if it must pass."""
    if nodeid in EXPECTED_FAILURES:
        return EXPECTED_FAILURES[nodeid]
    if nodeid in NOT_YET_COMPATIBLE:
        return NOT_YET_COMPATIBLE[nodeid]
    for prefix, reason in OUT_OF_SCOPE_CLASSES.items():
        if nodeid.startswith(prefix + "::"):
            return reason
    return None


# ----------------------------------------------------------------------------- the runner

PLUGIN = r'''
"""pytest plugin: wsproto's tests on wsproto_core; records each test's outcome."""

import json
import os
import sys

import wsproto_core.compat

wsproto_core.compat.install()

import wsproto  # noqa: E402

if wsproto.__name__ != "wsproto_core":
    raise SystemExit(f"compat.install() did not take: wsproto is {wsproto.__file__}")

_outcomes = {}


def pytest_runtest_logreport(report):
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif previous is None and report.skipped:
        _outcomes[report.nodeid] = "skipped"
    elif previous is None and report.when == "call":
        _outcomes[report.nodeid] = "passed"


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid] = "error"


def pytest_sessionfinish(session, exitstatus):
    real = sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == "wsproto" or name.startswith("wsproto."))
        and not getattr(module, "__name__", "").startswith("wsproto_core")
    )
    with open(os.environ["WSPROTO_CORE_SUITE_REPORT"], "w") as report:
        json.dump({"outcomes": _outcomes, "real_wsproto": real}, report)
'''


def _cache_directory() -> Path:
    configured = os.environ.get("WSPROTO_CORE_SDIST_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "wsproto_core-sdists"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unavailable(message: str) -> None:
    """Skip outside CI (no registry here); fail in CI, which must run this suite."""
    if _IN_CI:
        pytest.fail(f"{message} (CI or WSPROTO_CORE_CI is set, so this is a failure, not a skip)")
    pytest.skip(message)


def _fetch_sdist() -> Path:
    """The wsproto sdist, from the cache or else from the package registry via pip."""
    cache = _cache_directory()
    sdist = cache / SDIST_NAME
    if sdist.is_file() and _sha256(sdist) == SDIST_SHA256:
        return sdist
    cache.mkdir(parents=True, exist_ok=True)
    # Download beside the cache, then move into place: two test runs fetching
    # at once never see half a file.
    with tempfile.TemporaryDirectory(dir=cache) as download:
        command = [
            sys.executable,
            *("-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check"),
            *("-d", download, f"wsproto=={WSPROTO_VERSION}"),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            _unavailable(f"pip download of wsproto {WSPROTO_VERSION} took over {FETCH_TIMEOUT} s")
        fetched = Path(download) / SDIST_NAME
        if result.returncode != 0 or not fetched.is_file():
            _unavailable(
                f"cannot fetch the wsproto {WSPROTO_VERSION} sdist from the package registry:\n{result.stderr}"
            )
        digest = _sha256(fetched)
        if digest != SDIST_SHA256:
            pytest.fail(f"{SDIST_NAME} has SHA-256 {digest}, expected {SDIST_SHA256}")
        os.replace(fetched, sdist)
    return sdist


@pytest.fixture(scope="module")
def suite_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Run wsproto's tests once on wsproto_core; map each test id to its outcome."""
    sdist = _fetch_sdist()
    work = tmp_path_factory.mktemp("wsproto-suite")
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    root = work / f"wsproto-{WSPROTO_VERSION}"
    (work / "wsc_suite_plugin.py").write_text(PLUGIN)
    report = work / "report.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH")])),
        "WSPROTO_CORE_SUITE_REPORT": str(report),
        # Only our plugin: the frameworks' pytest plugins installed here
        # (anyio, trio, asyncio) have no business in wsproto's suite.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # wsproto's own source stays out of reach: it lives under src/, which is
    # not on the path, and the plugin reports any real wsproto module loaded.
    command = [
        sys.executable,
        *("-m", "pytest", "-p", "wsc_suite_plugin", "-p", "no:cacheprovider", "-q", "-o", "addopts="),
        *TEST_FILES,
    ]
    try:
        result = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"wsproto's suite did not finish within {RUN_TIMEOUT} s")
    assert report.is_file(), f"wsproto's suite did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    data = json.loads(report.read_text())
    assert data["real_wsproto"] == [], f"the real wsproto was imported: {data['real_wsproto']}"
    outcomes: dict[str, str] = data["outcomes"]
    yield outcomes


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_wsproto_suite_file(suite_outcomes: dict[str, str], test_file: str) -> None:
    outcomes = {nodeid: outcome for nodeid, outcome in suite_outcomes.items() if nodeid.split("::")[0] == test_file}
    assert outcomes, f"no test of {test_file} ran"
    errors = sorted(nodeid for nodeid, outcome in outcomes.items() if outcome == "error")
    assert errors == [], f"{test_file} failed to collect"
    failed = {nodeid for nodeid, outcome in outcomes.items() if outcome == "failed"}
    expected = {nodeid for nodeid in outcomes if _expected_failure(nodeid) is not None}
    unexpected_failures = sorted(failed - expected)
    now_passing = sorted(expected - failed)
    assert not unexpected_failures, f"wsproto's tests that fail on wsproto_core: {unexpected_failures}"
    assert not now_passing, f"listed as expected failures but now pass (remove them from the list): {now_passing}"


def test_expected_failures_name_real_tests(suite_outcomes: dict[str, str]) -> None:
    # A renamed or removed test must not leave a stale entry behind.
    stale = sorted((set(EXPECTED_FAILURES) | set(NOT_YET_COMPATIBLE)) - set(suite_outcomes))
    assert stale == []
    for prefix in OUT_OF_SCOPE_CLASSES:
        assert any(nodeid.startswith(prefix + "::") for nodeid in suite_outcomes), prefix


@pytest.mark.parametrize(("in_ci", "outcome"), [(False, pytest.skip.Exception), (True, pytest.fail.Exception)])
def test_unreachable_registry_skips_only_outside_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_ci: bool, outcome: type[BaseException]
) -> None:
    # An empty cache and a pip that cannot reach any index: CI must not skip.
    monkeypatch.setattr(sys.modules[__name__], "_IN_CI", in_ci)
    monkeypatch.setenv("WSPROTO_CORE_SDIST_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(outcome, match="sdist"):
        _fetch_sdist()
