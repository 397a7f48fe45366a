from common.app import serve
from order_service.app import create_app
from order_service.settings import OrderSettings

serve(create_app, OrderSettings())
