"""``actoros bench cluster``: actoros nodes on a local Ray cluster, side by side with Ray.

``run`` (the measurement), ``result`` (``ClusterResult``), ``report`` (Markdown and chart);
``_actors`` are the actors the nodes run (imported there by module path), ``_ray`` starts the
local Ray cluster of two one-CPU Ray nodes.
"""
