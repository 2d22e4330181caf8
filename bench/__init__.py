"""`python -m bench`: performance figures of assistants-compat, each beside a baseline.

Every figure is measured next to a baseline taken in the same run on the same machine (a bare
aiohttp + grpc.aio floor, the upstream read directly, `python -c pass`…), because on a small,
noisy machine only ratios measured side by side mean anything. See `bench/__main__.py`.

This package is imported by the child processes too (`python -m bench.ours`, …), so it must
stay cheap to import: nothing here imports the server.
"""
