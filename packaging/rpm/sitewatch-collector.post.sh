# %systemd_post: on first install, enable or not as the distribution's presets say.
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload preset sitewatch-collector.service >/dev/null 2>&1 || :
fi
