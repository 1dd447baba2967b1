from django.apps import AppConfig


class BillmgrApiConfig(AppConfig):
    name = "billmgr_api"
    verbose_name = "BILLmanager door"

    def ready(self) -> None:
        from billmgr_api import handlers  # noqa: F401  (registers every function)
        from billmgr_api.auth import end_sessions
        from common.signin import credentials_changed

        credentials_changed.connect(end_sessions, dispatch_uid="billmgr-end-sessions")
