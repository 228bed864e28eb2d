"""An app package for ``-A tests.apps.discovered``: its tasks live in ``tasks`` modules
(found by autodiscovery) and its settings in a module (``config_from_object``)."""

from __future__ import annotations

from yadtq import YADTQ

app = YADTQ("discovered")
app.config_from_object("tests.apps.discovered.settings")
