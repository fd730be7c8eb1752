"""One round of measurements: `measure` (the per-target flow over the steps: resolve, then
every address on every port), `runner` (the round's orchestration: baselines first, the
control and address discovery alongside, analysis, records held per service, scrubbing,
interrupt records), `records` (building the record of one target), `schedule` (repeated
rounds and the systemd timer / cron line) and `resources` (open files, GC)."""
