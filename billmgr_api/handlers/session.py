from billmgr_api import auth
from billmgr_api.registry import func
from billmgr_api.request import FuncRequest
from billmgr_api.results import FuncResult


@func("auth", public=True)
def login(req: FuncRequest) -> FuncResult:
    """`func=auth&username=U&password=P` answers a session id for later `auth=ID` calls (and sets
    it in the `billmgrses5` cookie), with the access level it carries."""
    session = auth.login(username=req.get("username"), password=req.get("password"), ip=req.ip)
    return FuncResult.auth(session.key, auth.level_of(session.user))


@func("session.logout", public=True)
def logout(req: FuncRequest) -> FuncResult:
    auth.logout(session_id=req.get("auth").strip() or req.session_cookie)
    result = FuncResult.ok()
    result.session_cookie = ""
    return result
