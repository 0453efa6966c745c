"""The dependency audit gate: pip-audit's JSON report and the reviewed exceptions in, a verdict out.

pip-audit finds the known vulnerabilities; whether the image may ship is this
package's decision, made by rules a reviewer can read (``gate.py``). It reads
files only and uses the standard library alone, so pip-audit never becomes a
dependency of the product. ``report`` and ``exceptions`` turn the two inputs
into typed values, ``gate`` judges them, ``cli`` prints the verdict.
"""
