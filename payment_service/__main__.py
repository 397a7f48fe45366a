from common.app import serve
from payment_service.app import create_app
from payment_service.settings import PaymentSettings

serve(create_app, PaymentSettings())
