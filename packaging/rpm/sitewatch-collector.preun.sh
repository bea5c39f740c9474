# %systemd_preun: on erase (not upgrade), stop and disable.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now sitewatch-collector.service >/dev/null 2>&1 || :
fi
