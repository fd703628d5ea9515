#!/usr/bin/env python3
"""Home Assistant's side of tests/home_assistant_real.rs; run with the venv's python
(tests/home_assistant/setup-venv makes it: Home Assistant and the modbus integration's
pymodbus, pinned in requirements.txt).

  ha_driver.py check CONFIG_DIR
      Home Assistant's own configuration check (what `hass --script check_config`
      runs) on CONFIG_DIR, with every warning or error logged on the way counted as a
      failure: Home Assistant 2024.3's check reports a bad `template:` entry only in
      its log and still exits 0. Prints one JSON line with what was loaded
      ({"modbus_sensors": N, "number": N, "select": N, "button": N, "sensor": N}; sensor:
      the template sensors) and exits 0, or
      prints the problems and exits 1.

  ha_driver.py token CONFIG_DIR
      Before Home Assistant first starts on CONFIG_DIR: creates an administrator with a
      long-lived access token in CONFIG_DIR/.storage (what the profile page's "create
      token" does) with Home Assistant's auth manager, and prints the token.

  ha_driver.py api URL TOKEN METHOD PATH [JSON]
      One REST API request; prints the status code on the first line, the body after.
"""

import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from datetime import timedelta


def check(config_dir):
    from homeassistant.scripts import check_config

    problems = []

    class Collect(logging.Handler):
        def emit(self, record):
            problems.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().addHandler(Collect(level=logging.WARNING))
    res = check_config.check(config_dir)
    for kind in ("except", "warn"):
        for domain, items in res[kind].items():
            for item in items:
                text = str(item)
                if len(text) > 600:
                    text = text[:600] + " …"
                problems.append(f"{kind} {domain}: {text}")
    if problems:
        print("Home Assistant rejects the configuration:")
        for p in problems:
            print("  " + p)
        return 1
    comps = res["components"]
    hubs = comps.get("modbus") or []
    templates = comps.get("template") or []
    counts = {
        "modbus_sensors": sum(len(h.get("sensors", [])) for h in hubs),
        "number": sum(len(t.get("number", [])) for t in templates),
        "select": sum(len(t.get("select", [])) for t in templates),
        "button": sum(len(t.get("button", [])) for t in templates),
        "sensor": sum(len(t.get("sensor", [])) for t in templates),
    }
    print(json.dumps(counts))
    return 0


async def make_token(config_dir):
    from homeassistant import core
    from homeassistant.auth import auth_manager_from_config
    from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
    from homeassistant.helpers import area_registry, device_registry, entity_registry

    hass = core.HomeAssistant(config_dir)
    await area_registry.async_load(hass)
    await device_registry.async_load(hass)
    await entity_registry.async_load(hass)
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    user = await hass.auth.async_create_user("p1lb test", group_ids=["system-admin"])
    refresh = await hass.auth.async_create_refresh_token(
        user,
        client_name="p1lb test",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    token = hass.auth.async_create_access_token(refresh)
    # The auth store saves with a delay; Home Assistant's stop writes it out.
    await hass.async_stop(force=True)
    return token


def api(url, token, method, path, body=None):
    req = urllib.request.Request(
        url.rstrip("/") + path,
        method=method,
        data=body.encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    print(status)
    print(text)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        return check(argv[1])
    if len(argv) >= 2 and argv[0] == "token":
        print(asyncio.run(make_token(argv[1])))
        return 0
    if len(argv) in (5, 6) and argv[0] == "api":
        return api(*argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
