from collections import deque

def signal_function(state, action, next_state):
    rows = [r.split(' ') for r in next_state.strip().split('\n') if not r.startswith('Error')]
    n, m = len(rows), len(rows[0])
    start = goal = None
    for i in range(n):
        for j in range(m):
            if rows[i][j] == '@':
                start = (i, j)
            if rows[i][j] == 'G':
                goal = (i, j)
    if goal is None:
        return 0.0
    dist = {start: 0}
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        if (i, j) == goal:
            return -float(dist[(i, j)])
        for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            a, b = min(max(i + di, 0), n - 1), min(max(j + dj, 0), m - 1)
            if (a, b) not in dist and rows[a][b] != 'H':
                dist[(a, b)] = dist[(i, j)] + 1
                queue.append((a, b))
    return -100.0
