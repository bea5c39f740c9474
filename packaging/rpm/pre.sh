# The sitewatch user, as packaging/systemd/sitewatch-*.sysusers describes it,
# created before the files land. Kept on erase: the agent and the collector
# share it, and files it owned may remain.
getent group sitewatch >/dev/null || groupadd -r sitewatch
getent passwd sitewatch >/dev/null || \
    useradd -r -g sitewatch -d /var/lib/sitewatch -s /sbin/nologin -c "sitewatch monitoring" sitewatch
exit 0
