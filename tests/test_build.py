"""The suite runs against the build it means to test."""
import os

import pcapflow


def test_sanitized_run_uses_the_sanitized_build():
    # make test-sanitized sets this; without it the check below is the
    # ordinary build's (any location is fine then)
    if os.environ.get("PCAPFLOW_EXPECT_SANITIZED"):
        assert "build/sanitized" in pcapflow._core.__file__
    else:
        assert "build/sanitized" not in pcapflow._core.__file__
