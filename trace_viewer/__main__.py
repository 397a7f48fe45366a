from trace_viewer.server import run
from trace_viewer.settings import ViewerSettings

run(ViewerSettings())
