"""The progress bar needs a terminal with columns: mpiexec gives its ranks one 0 wide."""

import os
import struct

import pytest

from gradwell.train.progress import ProgressBar

fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")


def test_a_terminal_zero_columns_wide_gets_one_line_per_epoch_and_a_real_one_the_bar():
    leader, follower = os.openpty()
    try:
        stream = os.fdopen(follower, "w")
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 0, 0, 0))
        assert stream.isatty() and not ProgressBar(1, file=stream)._use_bar()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        assert ProgressBar(1, file=stream)._use_bar()
        assert not ProgressBar(2, file=stream)._use_bar()
        stream.close()
    finally:
        os.close(leader)
