# %systemd_post: on first install, enable or not as the distribution's presets say.
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload preset sitewatch-agent.service >/dev/null 2>&1 || :
fi
# Apply the udev rule (/dev/ipmi0 to the sitewatch group) to a present device.
if [ -d /run/udev ] && command -v udevadm >/dev/null 2>&1; then
    udevadm trigger --subsystem-match=ipmi --action=change >/dev/null 2>&1 || :
fi
