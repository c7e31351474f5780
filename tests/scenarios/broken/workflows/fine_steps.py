def ok() -> str:
    return "ok"
