"""Photo collections: index folders of photos, cluster the faces by person, name them once.

Modules (import what you need; nothing heavy loads with the package):

- :mod:`.store` the photo index's tables in the shared SQLite file (component ``"collections"``);
- :mod:`.scan` which files are new, changed or gone; :mod:`.workers` detect + embed chunks
  in this process, a process pool or Ray actors; :mod:`.index` ``index_folder``;
- :mod:`.clustering` the algorithms (``create_clusterer``), :mod:`.constraints` must-link /
  cannot-link rules, :mod:`.assign` ``cluster_index`` (full or incremental, stored);
- :mod:`.metrics` pairwise/BCubed/NMI scores, :mod:`.evaluate` labelled-folder evaluation;
- :mod:`.sheets` HTML contact sheets and per-person crop folders; :mod:`.naming` naming a
  cluster enrolls it into the gallery.
"""
