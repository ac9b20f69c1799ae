#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
cat > greet.sh <<'EOF'
#!/bin/bash
echo "Hello, ${NAME:-stranger}!"
EOF
chmod 755 greet.sh
