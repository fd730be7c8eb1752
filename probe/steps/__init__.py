"""The measurement steps, one module (or small package) per network layer: `dns`, `tcp`,
`udp`, `tls`, `http`, `mtproto`. A step is a plain `async def` taking a small input and
returning an observation (probe.observations); failures are data, classified once in
probe.failures; only cancellation escapes; each step owns its deadline. Steps import
nothing above this package."""
