"""Admin for operators: configure integrations, generate keys, preview tokens, fire test
calls and read the call log.

``integration`` holds the integration admin (lists and forms), ``views`` its test-call
and preview views, ``panels`` the read-only panels of its change page, ``calllog`` the
read-only call log admin and ``filters`` the list filters. HTML lives in templates under
``templates/admin/integrations/``, rendered with autoescaping.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import Account, CallLog, Integration
from .accounts import AccountAdmin
from .calllog import CallLogAdmin
from .integration import IntegrationAdmin

admin.site.register(Integration, IntegrationAdmin)
admin.site.register(CallLog, CallLogAdmin)
admin.site.register(Account, AccountAdmin)

__all__ = ["AccountAdmin", "CallLogAdmin", "IntegrationAdmin"]
