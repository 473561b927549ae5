"""The web app behind ``gan-style serve``: translate photos in the browser (Gradio).

- ``models``: which generators the server offers (runs/, exports/, the official zoo, --weights),
  their labels, and a bounded cache of loaded generators;
- ``batch``: translating uploaded files one by one with limits, messages naming bad files, and
  the zip of a batch;
- ``examples``: example photos the app draws itself (nothing large in git);
- ``training``: the runs' loss curves (metrics.jsonl) and latest sample panels;
- ``ui``: the Gradio page.

Only ``ui`` imports Gradio. Imports nothing from the training code: runs are read as files.
"""
