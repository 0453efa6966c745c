"""What counts as a credential inside a config value, decided without ever printing it.

Configs are signed and handed to many people, so a token pasted into ``env``,
``headers`` or ``args`` would leak to all of them. A value is flagged when it
carries a well-known token prefix, a private-key block, a password in a URL,
a literal value under a name that says "secret", or a long random-looking
token. A value that is only a reference (``${env:NAME}``, ``${NAME}``,
``${input:NAME}``, ``Bearer ${env:NAME}``) is never a secret, and placeholders
are removed from any other value before the rules run.

Rules return a short label ("a GitHub token"), never the value or a part of it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

PLACEHOLDER = re.compile(r"\$\{(?:env:|input:)?[A-Za-z_][A-Za-z0-9_.-]{0,127}\}")

# Token prefixes, most specific first ("sk-ant-" before "sk-"). A prefix must not
# follow a letter or digit, so "task-..." or "desk-..." never look like "sk-...".
_START = r"(?<![A-Za-z0-9])"
_PREFIX_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        ("a private key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("a GitHub token", _START + r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
        ("a GitLab token", _START + r"glpat-[A-Za-z0-9_-]{20,}"),
        ("a Slack token", _START + r"xox[abposr]-[A-Za-z0-9-]{10,}"),
        ("an Anthropic API key", _START + r"sk-ant-[A-Za-z0-9_-]{20,}"),
        # OpenAI keys mix case and digits; the lookaheads keep names like "sk-video-tools-server" out.
        ("an OpenAI API key", _START + r"sk-(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{20,}"),
        ("an AWS access key id", _START + r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        ("a Google API key", _START + r"AIza[0-9A-Za-z_-]{35}"),
        ("a Stripe secret key", _START + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"),
        ("an npm token", _START + r"npm_[A-Za-z0-9]{30,}"),
        ("a Hugging Face token", _START + r"hf_[A-Za-z0-9]{30,}"),
        ("a JSON Web Token", _START + r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        ("a bearer token", r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}"),
        ("HTTP Basic credentials", r"(?i)\bbasic\s+[A-Za-z0-9+/]{16,}"),
        ("a password in a URL", r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^/\s:@]{0,256}:[^/\s@]{1,256}@"),
    )
)

# Names that say their value is a credential, after normalising camelCase, '-' and '.' to '_'.
_CREDENTIAL_NAME = re.compile(
    r"(?:^|_)(?:token|secret|password|passwd|passphrase|pass|pat|api_?key|access_?key|private_?key|secret_?key"
    r"|authorization|cookie)$"
)
# Names that say their value is an identifier (account, database, client ids): random-looking but public.
_IDENTIFIER_NAME = re.compile(r"(?:^|_)u?ids?$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_AUTH_SCHEME = re.compile(r"(?i)\s*(?:bearer|basic|token)\s+")
_PATH_LIKE = re.compile(r"(?:/|~/|\.{1,2}/|[A-Za-z]:[\\/])\S*")
# A literal shorter than this is a toggle or a mode, not a password worth refusing.
MIN_LITERAL_CREDENTIAL = 8
# ``--token=VALUE``, ``NAME=VALUE`` (as in ``docker run -e``) or ``Header: VALUE`` (as in ``--header``):
# the value is judged under the name.
_ASSIGNMENT = re.compile(r"(?:--?)?([A-Za-z_][A-Za-z0-9_.-]{0,127})(?:=|:[ \t]*)(.*)", re.DOTALL)
_FLAG = re.compile(r"--?([A-Za-z][A-Za-z0-9_.-]{0,127})")

# High-entropy tokens: runs of base64/base64url/hex characters of at least
# ``MIN_TOKEN_LENGTH``; '.', ':', '=', '@' and spaces split them, so hostnames,
# URLs and versions break into short pieces. The thresholds below keep paths, URLs,
# package, image and model names and UUIDs out (see the false-positive tests) and
# miss, of random tokens, under 2% of base62/base64 and 4% of hex/base36 at 20
# characters, and under 0.5% of base62/base64/hex from 32. Base32 (upper case and
# 2-7) is missed up to 20% of the time: its letters rarely switch to digits.
MIN_TOKEN_LENGTH = 20
# The one mask token: what every output shows in place of a secret, a masked value or key material.
MASK = "***"
_TOKEN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_TOKEN_LENGTH},}}")
# Digests and git revisions are hex but public: "sha256:<hex>", "repo@<hex>", "#<hex>".
_PUBLIC_HEX = re.compile(r"(?:\b(?:sha1|sha224|sha256|sha384|sha512|md5):|[@#])[0-9A-Fa-f]{7,128}(?![A-Za-z0-9])")
# Mixed-case tokens (base62, base64): Shannon entropy in bits per character, and
# the largest share of characters that may sit in word-like runs ("Application"),
# which is what separates CamelCase names from keys.
MIXED_CASE_MIN_ENTROPY = 3.5
MIXED_CASE_MAX_WORD_SHARE = 0.6
_WORD = re.compile(r"[A-Z]?[a-z]{3,}")
# Single-case tokens with digits and no separators (hex, base36, base32): entropy,
# and the least share of letter/digit switches, which separates keys from
# "backup20240115archive". Separators ('-', '_', '/', '+') mean a name or a path (or a UUID).
HEX_MIN_ENTROPY = 3.0
SINGLE_CASE_MIN_ENTROPY = 3.3
SINGLE_CASE_MIN_SWITCHES = 0.2
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")


def find_secret(value: str, name: str | None = None) -> str | None:
    """Label of the first rule that flags ``value`` (e.g. "a GitHub token"), or None.

    ``name`` is what the value is stored under (an env variable, a header, the
    flag before it); a value of the form ``NAME=VALUE`` or ``--name=VALUE`` also
    names itself. A literal under a credential name is flagged, and a value under
    an identifier name (``*_ID``) skips the entropy rule.
    """
    if is_reference(value):
        return None
    text = PLACEHOLDER.sub(" ", value)
    for label, pattern in _PREFIX_RULES:
        if pattern.search(text):
            return label
    named = [(name, text)] if name is not None else []
    if assignment := _ASSIGNMENT.fullmatch(text.strip()):
        named.append((assignment.group(1), assignment.group(2)))
    normalised = [(_normalise(key), literal) for key, literal in named]
    if any(_CREDENTIAL_NAME.search(key) and _is_literal_credential(literal) for key, literal in normalised):
        return "a credential (its name marks it as one)"
    if not any(_IDENTIFIER_NAME.search(key) for key, _ in normalised) and _has_random_token(text):
        return "a high-entropy string (a likely key or token)"
    return None


def secret_arguments(args: Sequence[object]) -> dict[int, str]:
    """Index and label of each argument that is a credential, alone or after a flag like ``--token``."""
    found: dict[int, str] = {}
    flag: str | None = None
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            flag = None
            continue
        flag_match = _FLAG.fullmatch(arg)
        label = find_secret(arg, None if flag_match else flag)
        if label is not None:
            found[index] = label
        flag = flag_match.group(1) if flag_match else None
    return found


_QUOTED_WORD = re.compile(r"[^\s'\"`,;()\[\]{}<>]+")
# The product's own identifiers: object ids and key fingerprints (SHA-256 in hex), public by design.
_DIGEST = re.compile(r"(?:SHA256:)?[0-9a-f]{64}[.:]?")


def scrub_text(text: str, mask: str = MASK) -> str:
    """``text`` with every word that the rules flag replaced by ``mask`` (for error messages that quote input)."""

    def scrub(word: re.Match[str]) -> str:
        value = word.group()
        return value if _DIGEST.fullmatch(value) or not find_secret(value) else mask

    return _QUOTED_WORD.sub(scrub, text)


def is_reference(value: str) -> bool:
    """Whether ``value`` only points at a secret: placeholders, perhaps an auth scheme word, punctuation."""
    return PLACEHOLDER.search(value) is not None and not _literal_part(PLACEHOLDER.sub(" ", value))


def _normalise(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).replace("-", "_").replace(".", "_").lower()


def _literal_part(text: str) -> str:
    """``text`` without surrounding space and a leading auth scheme; empty if no letter or digit is left."""
    literal = text.strip()
    scheme = _AUTH_SCHEME.match(literal + " ")
    if scheme is not None:
        literal = literal[scheme.end() :].strip()
    return literal if any(char.isalnum() for char in literal) else ""


def _is_literal_credential(text: str) -> bool:
    literal = _literal_part(text)
    return len(literal) >= MIN_LITERAL_CREDENTIAL and not _PATH_LIKE.fullmatch(literal)


def _has_random_token(text: str) -> bool:
    return any(_looks_random(token) for token in _TOKEN.findall(_PUBLIC_HEX.sub(" ", text)))


def _looks_random(token: str) -> bool:
    lower = any(c.islower() for c in token)
    upper = any(c.isupper() for c in token)
    if lower and upper:
        words = sum(len(word) for word in _WORD.findall(token))
        return _entropy(token) >= MIXED_CASE_MIN_ENTROPY and words / len(token) < MIXED_CASE_MAX_WORD_SHARE
    if not token.isalnum() or token.isalpha() or token.isdigit():
        return False
    threshold = HEX_MIN_ENTROPY if _HEX.fullmatch(token) else SINGLE_CASE_MIN_ENTROPY
    switches = sum(a.isdigit() != b.isdigit() for a, b in pairwise(token))
    return _entropy(token) >= threshold and switches / (len(token) - 1) >= SINGLE_CASE_MIN_SWITCHES


def _entropy(token: str) -> float:
    """Shannon entropy of ``token`` in bits per character."""
    length = len(token)
    return -sum(count / length * math.log2(count / length) for count in Counter(token).values())
