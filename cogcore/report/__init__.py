"""The run report and `cogcore compare`: pages built from run directories' files alone.

    cogcore report runs/demo                    # report/report.md, report.html, cost.json, charts
    cogcore compare runs/a runs/b --reference reference/bfcl_v3_small_models.csv

This package sits above the stage packages: it reads every stage's files through their classes
(`run_files`), and no stage package imports it. `blocks` holds the pages' building blocks and their
Markdown and HTML renderings, `cost` the serving and training cost model, `plots` the charts,
`run_report` one run's report and `compare` several runs side by side.
"""
