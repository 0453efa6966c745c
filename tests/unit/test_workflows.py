"""The GitHub Actions workflows users run: pinned, least-privilege, and the make targets exactly.

Each rule is a function that lists what breaks it; the tests assert the lists are empty for the
workflows in .github/workflows/, and ``test_each_check_catches_what_it_guards_against`` feeds the
same functions altered copies, so a check that could never fail would fail there.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("ci.yml", "audit.yml", "release.yml")
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"^\s+#\s*v\d+(?:\.\d+){0,2}\s*$")
LEVELS = {"read", "write", "none"}
MAX_TIMEOUT = 120
SEPARATORS = {"&&", "||", ";", "|"}

Workflow = dict[str, Any]


def text(name: str) -> str:
    return (WORKFLOWS / name).read_text()


def parse(source: str) -> Workflow:
    data = yaml.safe_load(source)
    assert isinstance(data, dict), "a workflow is a mapping"
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def load(name: str) -> Workflow:
    return parse(text(name))


def jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    found = workflow.get("jobs")
    assert isinstance(found, dict) and found, "a workflow needs jobs"
    return found


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def triggers(workflow: Workflow) -> dict[str, Any]:
    on = workflow.get("on")
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), on
    return on


def commands(run: str) -> Iterator[list[str]]:
    """The simple commands of a ``run:`` script, as words: continuation lines joined, comments dropped."""
    for line in run.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        command: list[str] = []
        for word in [*words, ";"]:
            if word in SEPARATORS:
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def unprivileged(command: list[str]) -> list[str]:
    """The command without a leading ``sudo [options]``, ``env`` or ``NAME=value`` assignments."""
    words = list(command)
    while words:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) or words[0] == "env":
            words.pop(0)
        elif words[0] == "sudo":
            words.pop(0)
            while words and words[0].startswith("-"):
                words.pop(0)
        else:
            break
    return words


def make_calls(workflow: Workflow) -> list[tuple[str, int, list[str]]]:
    """Every make invocation: (job, step index, words after ``make``)."""
    calls = []
    for job_name, job in jobs(workflow).items():
        for index, step in enumerate(steps(job)):
            for command in commands(str(step.get("run", ""))):
                words = unprivileged(command)
                if words and words[0] == "make":
                    calls.append((job_name, index, words[1:]))
    return calls


def needs(workflow: Workflow, name: str) -> set[str]:
    """Every job that must succeed before ``name`` starts: its ``needs``, and theirs."""
    found: set[str] = set()
    pending = [name]
    while pending:
        wanted = jobs(workflow).get(pending.pop(), {}).get("needs") or []
        for other in [wanted] if isinstance(wanted, str) else wanted:
            if other not in found:
                found.add(other)
                pending.append(other)
    return found


def step_index(job: dict[str, Any], pattern: str) -> int | None:
    """The index of the first step whose ``run`` or ``uses`` matches ``pattern``."""
    for index, step in enumerate(steps(job)):
        if re.search(pattern, str(step.get("run", ""))) or re.search(pattern, str(step.get("uses", ""))):
            return index
    return None


# -- the rules: each returns what breaks it ----------------------------------------------------


def unpinned_uses(source: str) -> list[str]:
    """Every ``uses:`` must be owner/repo[/path]@<40-hex SHA> followed by a ``# vX.Y.Z`` comment."""
    problems = []
    lines = [line for line in source.splitlines() if re.match(r"^\s*(?:-\s+)?uses:", line)]
    for line in lines:
        match = USES_LINE.match(line)
        assert match is not None, line
        if not SHA_PIN.match(match.group("ref")):
            problems.append(f"not pinned to a full commit SHA: {line.strip()}")
        elif not VERSION_COMMENT.match(match.group("rest")):
            problems.append(f"no '# vX.Y.Z' comment naming the pinned release: {line.strip()}")
    parsed = [step["uses"] for job in jobs(parse(source)).values() for step in steps(job) if "uses" in step]
    parsed += [job["uses"] for job in jobs(parse(source)).values() if "uses" in job]
    if len(parsed) != len(lines):
        problems.append(f"{len(parsed)} uses in the workflow, {len(lines)} written one per line")
    problems += [f"not pinned to a full commit SHA: {ref}" for ref in parsed if not SHA_PIN.match(str(ref))]
    return problems


def privilege_problems(workflow: Workflow) -> list[str]:
    """No permissions by default; every job lists its own, each read/write/none, and has a timeout."""
    problems = []
    if workflow.get("permissions") != {}:
        problems.append(f"top-level permissions must be {{}}, not {workflow.get('permissions')!r}")
    for name, job in jobs(workflow).items():
        permissions = job.get("permissions")
        if not isinstance(permissions, dict):
            problems.append(f"{name}: permissions must be a mapping of its own, not {permissions!r}")
        else:
            problems += [f"{name}: {scope}: {level!r}" for scope, level in permissions.items() if level not in LEVELS]
        timeout = job.get("timeout-minutes")
        if not (isinstance(timeout, int) and 0 < timeout <= MAX_TIMEOUT):
            problems.append(f"{name}: timeout-minutes must be 1..{MAX_TIMEOUT}, not {timeout!r}")
    return problems


def hygiene_problems(workflow: Workflow) -> list[str]:
    """Checkout keeps no token, runs are grouped, no trigger hands secrets to untrusted code, no injection."""
    problems = []
    concurrency = workflow.get("concurrency")
    if not (isinstance(concurrency, dict) and "github.workflow" in str(concurrency.get("group", ""))):
        problems.append(f"concurrency needs a group per workflow: {concurrency!r}")
    problems += [f"trigger {t}" for t in triggers(workflow) if t in {"pull_request_target", "workflow_run"}]
    for name, job in jobs(workflow).items():
        for step in steps(job):
            checkout = str(step.get("uses", "")).startswith("actions/checkout@")
            if checkout and (step.get("with") or {}).get("persist-credentials") is not False:
                problems.append(f"{name}: actions/checkout without persist-credentials: false")
            if "${{" in str(step.get("run", "")):
                problems.append(f"{name}: an expression inside run (pass it through env): {step.get('name')}")
            if step.get("continue-on-error"):
                problems.append(f"{name}: continue-on-error hides a failure: {step.get('name')}")
    return problems


def id_token_jobs(workflow: Workflow) -> list[str]:
    """The jobs that may mint an OIDC token (and the top level, if it grants one)."""
    found = [name for name, job in jobs(workflow).items() if (job.get("permissions") or {}).get("id-token") == "write"]
    if isinstance(workflow.get("permissions"), dict) and workflow["permissions"].get("id-token"):
        found.append("<top level>")
    return found


def ci_problems(workflow: Workflow) -> list[str]:
    """ci.yml runs `make test` (nothing else through make) as .ci/run does: after the engine, Inspector and suite."""
    problems = []
    if not {"push", "pull_request"} <= set(triggers(workflow)):
        problems.append(f"ci must run on push and pull_request: {sorted(triggers(workflow))}")
    calls = make_calls(workflow)
    if [words for _, _, words in calls] != [["test"]]:
        return [*problems, f"ci must run exactly `make test`, once: {calls}"]
    job_name, index, _ = calls[0]
    job = jobs(workflow)[job_name]
    engine, inspector = step_index(job, r"build/docker-engine\.sh"), step_index(job, r"npm ci --prefix build/node")
    if engine is None or engine >= index:
        problems.append("build/docker-engine.sh must run before make test, in the same job")
    if inspector is None or inspector >= index:
        problems.append("npm ci --prefix build/node (the MCP Inspector) must run before make test")
    suite = step_index(job, r"npm ci --prefix build/conformance")
    if suite is None or suite >= index:
        problems.append("npm ci --prefix build/conformance (the MCP conformance suite) must run before make test")
    run = str(steps(job)[index]["run"])
    environment = {**(workflow.get("env") or {}), **(job.get("env") or {}), **(steps(job)[index].get("env") or {})}
    for variable in (
        "MCP_ORCHESTRATION_REQUIRE_DOCKER",
        "MCP_ORCHESTRATION_REQUIRE_INSPECTOR",
        "MCP_ORCHESTRATION_REQUIRE_SOFTHSM",
        "MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS",
        "MCP_ORCHESTRATION_REQUIRE_REFERENCE_SERVERS",
        "MCP_ORCHESTRATION_REQUIRE_CONFORMANCE",
    ):
        if str(environment.get(variable)) != "1":
            problems.append(f"{variable}=1 must be set for make test")
        if run.lstrip().startswith("sudo") and not re.search(rf"--preserve-env=\S*\b{variable}\b", run):
            problems.append(f"sudo drops {variable}: add it to --preserve-env")
    return problems


def audit_problems(workflow: Workflow) -> list[str]:
    """audit.yml: on pull requests and a schedule, `make image` then `make audit`, reports uploaded."""
    problems = []
    on = triggers(workflow)
    if "pull_request" not in on:
        problems.append("audit must run on pull_request")
    schedule = on.get("schedule") or []
    if not (isinstance(schedule, list) and schedule and all("cron" in entry for entry in schedule)):
        problems.append(f"audit needs a cron schedule: {schedule!r}")
    calls = make_calls(workflow)
    if [words for _, _, words in calls] != [["image"], ["audit"]] or len({job for job, _, _ in calls}) != 1:
        return [*problems, f"audit must run `make image` then `make audit`, in one job: {calls}"]
    job_name, audit_index = calls[1][0], calls[1][1]
    uploads = [
        (index, step)
        for index, step in enumerate(steps(jobs(workflow)[job_name]))
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    if not any(
        index > audit_index and "build/out/audit" in str(step.get("with", {}).get("path", ""))
        for index, step in uploads
    ):
        problems.append("the reports and SBOMs (build/out/audit/) must be uploaded after make audit")
    if any("always()" in str(step.get("if", "")) for _, step in uploads):
        problems.append("upload with !cancelled(), not always()")
    return problems


def release_problems(workflow: Workflow) -> list[str]:
    """release.yml: on v* tags; tested, then the image built, audited, pushed, signed and attested by digest."""
    problems = []
    on = triggers(workflow)
    if set(on) != {"push"} or (on["push"] or {}).get("tags") != ["v*"] or "branches" in (on["push"] or {}):
        problems.append(f"release must run on pushed v* tags only: {on!r}")
    calls = make_calls(workflow)
    made = [words for _, _, words in calls if words != ["test"]]
    if made != [["image"], ["audit"]]:
        problems.append(f"release must build with `make image` and gate with `make audit`: {made}")
    problems += untested_builds(workflow, calls)
    signers = id_token_jobs(workflow)
    if len(signers) != 1 or signers[0] == "<top level>":
        return [*problems, f"exactly one job may have id-token: write: {signers}"]
    job = jobs(workflow)[signers[0]]
    runs = "\n".join(str(step.get("run", "")) for step in steps(job))
    uses = [str(step.get("uses", "")) for step in steps(job)]
    if not any(u.startswith("sigstore/cosign-installer@") for u in uses):
        problems.append(f"{signers[0]}: no sigstore/cosign-installer")
    if not re.search(r"cosign sign --yes \S*@\$\{?DIGEST", runs):
        problems.append(f"{signers[0]}: must run `cosign sign` on the image by digest")
    if not re.search(
        r"cosign attest --yes --type cyclonedx --predicate \S*/image-full\.cdx\.json \S*@\$\{?DIGEST", runs
    ):
        problems.append(f"{signers[0]}: must attach the whole-image SBOM (image-full.cdx.json) with cosign attest")
    if (
        not re.search(r"cosign verify-attestation --type cyclonedx\b", runs)
        or "image-full.cdx.json" not in runs.split("cosign verify-attestation", 1)[-1]
    ):
        problems.append(f"{signers[0]}: must verify the attested SBOM is the whole image's (image-full.cdx.json)")
    provenance = ("actions/attest@", "actions/attest-build-provenance@")
    if not (any(u.startswith(provenance) for u in uses) or "--type slsaprovenance" in runs):
        problems.append(f"{signers[0]}: no build provenance attestation")
    permissions = job.get("permissions") or {}
    if permissions.get("packages") != "write":
        problems.append(f"{signers[0]}: needs packages: write to store the signature beside the image")
    if not any("digest" in (other.get("outputs") or {}) for other in jobs(workflow).values()):
        problems.append("no job outputs the digest")
    return problems


def untested_builds(workflow: Workflow, calls: list[tuple[str, int, list[str]]]) -> list[str]:
    """A tag can point at a commit CI never tested: the job that builds must need one that runs `make test`."""
    testers = {job for job, _, words in calls if words == ["test"]}
    if not testers:
        return ["release must run `make test` (as ci.yml does) before it builds"]
    builders = {job for job, _, words in calls if words[:1] == ["image"]}
    untested = sorted(job for job in builders if not testers & needs(workflow, job))
    return [f"{job}: must need the job that runs make test ({', '.join(sorted(testers))})" for job in untested]


# -- the workflows as they are ----------------------------------------------------------------


def test_the_three_workflows_exist() -> None:
    assert sorted(path.name for path in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_action_is_pinned_to_a_commit_sha(name: str) -> None:
    assert unpinned_uses(text(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_every_job_has_its_own_permissions_and_a_timeout(name: str) -> None:
    assert privilege_problems(load(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_checkout_concurrency_triggers_and_scripts(name: str) -> None:
    assert hygiene_problems(load(name)) == []


def test_ci_runs_make_test_after_the_engine_as_ci_run_does() -> None:
    assert ci_problems(load("ci.yml")) == []
    # the command is the README's and .ci/run's own
    assert re.search(r"^make test\b", (ROOT / "README.md").read_text(), re.MULTILINE)
    ci_run = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci_run[-1] == "make test"
    assert any(line.startswith("build/docker-engine.sh") for line in ci_run)


def test_audit_runs_the_gate_on_pull_requests_and_daily() -> None:
    assert audit_problems(load("audit.yml")) == []


def test_release_signs_by_digest_and_only_the_signing_job_mints_an_oidc_token() -> None:
    assert release_problems(load("release.yml")) == []
    assert id_token_jobs(load("ci.yml")) == id_token_jobs(load("audit.yml")) == []


def test_release_tests_the_tag_exactly_as_ci_does() -> None:
    """The release's test job is ci.yml's: a change to one that the other misses would test less."""
    release, ci = load("release.yml"), load("ci.yml")
    [tester] = {job for job, _, words in make_calls(release) if words == ["test"]}
    assert jobs(release)[tester] == jobs(ci)["test"]
    for job in ("build", "publish", "sign"):  # nothing is built, pushed or signed before the tests pass
        assert tester in needs(release, job), job


def test_renovate_watches_the_locks_the_base_images_and_the_actions() -> None:
    """Dependabot reads neither ``build/*.lock`` nor ARG-named bases; Renovate must cover both."""
    config = json.loads((ROOT / "renovate.json").read_text())
    assert {"pip_requirements", "dockerfile", "github-actions"} <= set(config["enabledManagers"])
    patterns = [re.compile(p.strip("/")) for p in config["pip_requirements"]["managerFilePatterns"]]
    for lock in ("requirements.lock", "build-requirements.lock", "tools.lock"):
        assert any(p.search(f"build/{lock}") for p in patterns), lock
    dockerfiles = [re.compile(p.strip("/")) for p in config["dockerfile"]["managerFilePatterns"]]
    assert any(p.search("Dockerfile.distroless") for p in dockerfiles)
    assert "docker:pinDigests" in config["extends"] and "helpers:pinGitHubActionDigests" in config["extends"]
    # pep621 would bump pyproject.toml's ranges and leave build/*.lock, which is what ships, as it was
    assert "pep621" not in config["enabledManagers"]
    assert "pep621" in " ".join(config["description"])  # and the description says why
    assert not (ROOT / ".github" / "dependabot.yml").exists(), "one update tool, not two"


# -- and altered: every check can fail ---------------------------------------------------------


def drop_step(workflow: Workflow, pattern: str) -> None:
    """Remove the first step whose run or uses matches ``pattern``."""
    for job in jobs(workflow).values():
        index = step_index(job, pattern)
        if index is not None:
            job["steps"].pop(index)
            return
    raise AssertionError(f"no step matches {pattern}")


def edit_runs(job: dict[str, Any], old: str, new: str) -> None:
    for step in steps(job):
        if "run" in step:
            step["run"] = str(step["run"]).replace(old, new)


def altered(workflow: Workflow, alter: Any) -> Workflow:
    changed = copy.deepcopy(workflow)
    alter(changed)
    return changed


def test_each_check_catches_what_it_guards_against() -> None:
    ci_text = text("ci.yml")
    assert unpinned_uses(re.sub(r"@[0-9a-f]{40}", "@v7", ci_text, count=1))
    assert unpinned_uses(re.sub(r"@[0-9a-f]{40}", "@main", ci_text, count=1))
    assert unpinned_uses(re.sub(r"(@[0-9a-f]{40}) # v[\d.]+", r"\1", ci_text, count=1))
    # a pinned SHA, but in a flow mapping where the line check cannot see its comment
    assert unpinned_uses(ci_text + "      - {name: hidden, uses: actions/setup-node@" + "0" * 40 + "}\n")

    ci = load("ci.yml")
    for alter in (
        lambda w: w.update(permissions="read-all"),
        lambda w: jobs(w)["test"].pop("permissions"),
        lambda w: jobs(w)["test"].update(permissions="write-all"),
        lambda w: jobs(w)["test"]["permissions"].update(contents="admin"),
        lambda w: jobs(w)["test"].pop("timeout-minutes"),
        lambda w: jobs(w)["test"].update({"timeout-minutes": 360}),
    ):
        assert privilege_problems(altered(ci, alter)), alter

    for alter in (
        lambda w: steps(jobs(w)["test"])[0]["with"].pop("persist-credentials"),
        lambda w: w.pop("concurrency"),
        lambda w: triggers(w).update(pull_request_target=None),
        lambda w: steps(jobs(w)["test"])[-1].update(run="echo ${{ github.event.pull_request.title }}"),
        lambda w: steps(jobs(w)["test"])[-1].update({"continue-on-error": True}),
    ):
        assert hygiene_problems(altered(ci, alter)), alter

    def make_test_step(workflow: Workflow) -> dict[str, Any]:
        index = step_index(jobs(workflow)["test"], r"\bmake test\b")
        assert index is not None
        return steps(jobs(workflow)["test"])[index]

    for alter in (
        lambda w: make_test_step(w).update(run="make test-fast"),
        lambda w: make_test_step(w).update(run="make lint test"),
        lambda w: make_test_step(w).update(run="sudo make test BUILDER_IMAGE=x"),
        lambda w: make_test_step(w).update(run="sudo make test"),  # sudo drops MCP_ORCHESTRATION_REQUIRE_*
        lambda w: drop_step(w, r"build/docker-engine\.sh"),
        lambda w: drop_step(w, r"npm ci"),
        lambda w: drop_step(w, r"npm ci --prefix build/conformance"),
        lambda w: jobs(w)["test"]["env"].pop("MCP_ORCHESTRATION_REQUIRE_CONFORMANCE"),
        lambda w: jobs(w)["test"]["env"].pop("MCP_ORCHESTRATION_REQUIRE_DOCKER"),
        lambda w: triggers(w).pop("pull_request"),
    ):
        assert ci_problems(altered(ci, alter)), alter
    words = [unprivileged(command) for command in commands("sudo -E env A=1 make test && echo ok # make x")]
    assert words == [["make", "test"], ["echo", "ok"]]

    audit = load("audit.yml")
    for alter in (
        lambda w: triggers(w).pop("schedule"),
        lambda w: triggers(w).pop("pull_request"),
        lambda w: drop_step(w, r"\bmake audit\b"),
        lambda w: drop_step(w, r"\bmake image\b"),
        lambda w: drop_step(w, r"actions/upload-artifact@"),
    ):
        assert audit_problems(altered(audit, alter)), alter

    release = load("release.yml")
    [signer] = id_token_jobs(release)
    for alter in (
        lambda w: jobs(w)["build"]["permissions"].update({"id-token": "write"}),
        lambda w: w.update(permissions={"id-token": "write"}),
        lambda w: jobs(w)[signer]["permissions"].pop("id-token"),
        lambda w: edit_runs(jobs(w)[signer], "cosign sign", "echo"),
        lambda w: edit_runs(jobs(w)[signer], "@$DIGEST", ":latest"),
        lambda w: edit_runs(jobs(w)[signer], "--type cyclonedx", "--type spdx"),
        lambda w: edit_runs(jobs(w)[signer], "sbom/image-full.cdx.json", "sbom/image.cdx.json"),
        lambda w: edit_runs(jobs(w)[signer], "cosign verify-attestation", "echo"),
        lambda w: drop_step(w, r"actions/attest@"),
        lambda w: drop_step(w, r"\bmake audit\b"),
        lambda w: triggers(w)["push"].update(branches=["main"]),
        lambda w: jobs(w)["build"].pop("needs"),
        lambda w: jobs(w)["build"].update(needs=["publish"]),
        lambda w: drop_step(w, r"\bmake test\b"),
        lambda w: edit_runs(jobs(w)["test"], "make test", "make lint"),
    ):
        assert release_problems(altered(release, alter)), alter
