# qval: runs the step's command in a tmux session, as Harbor's agents type it (a terminal
# 200 columns wide), then prints the pane (wrapped lines joined, trailing blank lines
# dropped) and exits with the command's status. wrapper.sh does the rest, as without tmux.
exec 2>&1
printf 'set -g remain-on-exit on\nset -g remain-on-exit-format ""\nset -g history-limit 50000\nset -g status off\n' > /.qval/tmux.conf
tmux -f /.qval/tmux.conf new-session -d -s qval -x 200 -y 50 \
  "bash /.qval/wrapper.sh; echo \$? > /.qval/status; tmux wait-for -S qval-done" || exit 125
tmux wait-for qval-done
tmux capture-pane -p -J -S - -E - -t qval | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
tmux kill-server 2>/dev/null
exit "$(cat /.qval/status 2>/dev/null || echo 125)"
