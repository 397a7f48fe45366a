from common.app import serve
from inventory_service.app import create_app
from inventory_service.settings import InventorySettings

serve(create_app, InventorySettings())
