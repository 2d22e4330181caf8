"""A session runs Python as a notebook would: state between calls, output in order, images
as PNG, errors as logs."""

from __future__ import annotations

import struct
import zlib

from compat_core.sandbox.base import MNT_DATA

from .conftest import OpenSession


async def test_state_persists_between_calls(open_session: OpenSession) -> None:
    session = await open_session()
    first = await session.execute("import math\nanswer = 41")
    second = await session.execute("answer + 1")
    assert first.logs == ""
    assert second.logs == "42\n"
    assert not second.error
    assert second.stopped is None
    assert session.alive


async def test_output_keeps_its_order(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute(
        "import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr, flush=True)\n"
        "print('three')\n'four'"
    )
    assert result.logs == "one\ntwo\nthree\n'four'\n"


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header, after checking its signature and chunk CRCs."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, width, height, kinds = 8, 0, 0, []
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        body = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        kinds.append(kind)
        offset += 12 + length
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    return width, height


async def test_matplotlib_figures_come_out_as_png_once_each(open_session: OpenSession) -> None:
    session = await open_session()
    shown = await session.execute(
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()"
    )
    last = await session.execute("fig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nfig")
    assert len(shown.images) == 1
    assert len(last.images) == 1
    for image in (*shown.images, *last.images):
        width, height = _png_size(image)
        assert width > 100
        assert height > 100
    assert not shown.error


async def test_errors_are_logs_without_terminal_colours(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute("print('before')\n{}['missing']")
    assert result.error
    assert result.logs.startswith("before\n")
    assert "KeyError: 'missing'" in result.logs
    assert "\x1b[" not in result.logs
    assert result.stopped is None
    after = await session.execute("print('after')")
    assert after.logs == "after\n"
    assert not after.error


async def test_numpy_and_pandas_read_a_file_from_mnt_data(open_session: OpenSession) -> None:
    session = await open_session()
    session.data_dir.joinpath("data.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    result = await session.execute(
        f"import numpy as np, pandas as pd\ndf = pd.read_csv('{MNT_DATA}/data.csv')\n"
        "print(int(np.sum(df['y'])))"
    )
    assert result.logs == "12\n"


async def test_files_written_to_mnt_data_reach_the_data_dir(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute(
        f"open('{MNT_DATA}/out.txt', 'w').write('made inside')\nimport os\nos.getcwd()"
    )
    assert result.logs == f"'{MNT_DATA}'\n"
    assert session.data_dir.joinpath("out.txt").read_text() == "made inside"


async def test_an_image_that_is_not_a_png_is_left_out(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute(
        "from IPython.display import display\n"
        "display({'image/png': 'bm90IGEgcG5n', 'text/plain': 'x'}, raw=True)\n"
        "print('after')"
    )
    assert result.images == []
    assert result.logs == "[an image was left out: it is not a PNG]\nafter\n"
