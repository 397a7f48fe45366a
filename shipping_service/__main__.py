from common.app import serve
from shipping_service.app import create_app
from shipping_service.settings import ShippingSettings

serve(create_app, ShippingSettings())
