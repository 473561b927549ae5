"""Translation-quality metrics: FID, KID and MiFID on Inception features, plus network-free
cycle (L1 / PSNR / SSIM) and colour-distribution metrics.

One job per module, imported on demand (``import gan_style.metrics`` stays cheap):

- ``stats``     FID / KID / MiFID from feature matrices, in float64 (numpy only)
- ``inception`` the standard FID Inception network: locate, verify the checksum, load, resize
- ``features``  Inception features of image folders, with an on-disk cache keyed by content
- ``cycle``     L1 / PSNR / SSIM between image batches (cycle reconstruction)
- ``colour``    colour histograms and distances between them
- ``accumulate`` colours, features and cycle metrics of translations, batch by batch (eval.every and eval)
- ``generate``  run a generator over a folder (used by ``gan-style eval --weights``)
- ``evaluate``  the comparisons of ``gan-style eval``: a generator, a folder of fakes, two halves
- ``paired`` / ``paired_run``  MAE / PSNR / SSIM in data units / ``eval --paired``: translate, pair, measure
- ``style``     style metrics of stylised photos (``eval --painting``)
- ``registry``  the metric registries (plain dicts: name -> function)
- ``report``    the console table and the JSON report

The per-epoch evaluation of ``eval.every`` is ``gan_style/training/evaluation.py``. See docs/metrics.md for definitions, conventions and reference numbers.
"""
