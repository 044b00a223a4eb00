"""A ROM-free side-scrolling platformer: procedural levels, per-frame physics, RGB frames.

Plain numpy, no Gymnasium. :func:`generate_level` draws a level (ground with gaps, pipes,
brick platforms, walking enemies, a flagpole at the end) from a seed; :class:`SideScrollerSim`
plays it one 60 Hz frame at a time from an NES-style controller byte and renders the
240 x 256 RGB screen, so that the same frame-skip / grayscale / resize / frame-stack pipeline
as Super Mario Bros. runs on it (:mod:`opsrl.envs.mario.side_scroller` wraps it).

The world is a grid of 16-pixel tiles, 15 rows high (the NES screen: 240 pixels) and
``length`` columns long; the camera shows 16 columns (256 pixels) and, as in Super Mario
Bros., only scrolls right. Coordinates are level pixels, x to the right and y downwards.

The rules, after Super Mario Bros.:

- the player runs (``right``/``left``, faster with ``B``) and jumps (``A``, higher while held;
  ``A`` must be released and pressed again to jump again);
- falling below the screen, touching an enemy from the side or running out of time kills
  the player (one life);
- landing on an enemy from above stomps it (it disappears, the player bounces);
- enemies walk left once they come near the screen, turn round at walls and fall into gaps;
- touching the flagpole ends the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BUTTONS",
    "CLOCK_FRAMES",
    "COMPLETION_REWARD",
    "DEATH_PENALTY",
    "SCREEN_HEIGHT",
    "SCREEN_WIDTH",
    "STOMP_REWARD",
    "TILE",
    "FrameOutcome",
    "LevelLayout",
    "SideScrollerSim",
    "generate_level",
    "max_jump_height",
]

#: tile size in pixels
TILE = 16
#: the NES screen
SCREEN_HEIGHT, SCREEN_WIDTH = 240, 256
ROWS = SCREEN_HEIGHT // TILE
#: rows 13 and 14 are the ground; the player stands on y = 208
GROUND_ROW = 13
#: NES controller bits (nes-py's byte layout: right, left, down, up, start, select, B, A)
BUTTONS = {
    "right": 0b1000_0000,
    "left": 0b0100_0000,
    "down": 0b0010_0000,
    "up": 0b0001_0000,
    "start": 0b0000_1000,
    "select": 0b0000_0100,
    "B": 0b0000_0010,
    "A": 0b0000_0001,
}

#: tile codes
EMPTY, GROUND, BRICK, PIPE = 0, 1, 2, 3
SOLID = np.array([False, True, True, True])

# Physics, in pixels per frame (60 frames per second), tuned so that a jump clears three
# tiles up and, walking, about three tiles across (running: five).
WALK_SPEED = 1.5
RUN_SPEED = 2.5
ACCELERATION = 0.1
DECELERATION = 0.15
JUMP_SPEED = 5.5
#: gravity while rising with A held (a long jump) and otherwise
GRAVITY_HOLD = 0.25
GRAVITY = 0.6
MAX_FALL_SPEED = 6.0
STOMP_BOUNCE = 4.0
ENEMY_SPEED = 0.5
#: player and enemy hitboxes (width, height)
PLAYER_SIZE = (12, 16)
ENEMY_SIZE = (16, 16)
#: the player's left edge at the start, as Super Mario Bros.' x_pos of 40
START_X = 40.0
#: the camera keeps the player at most this far from the screen's left edge
CAMERA_LEAD = 112
#: frames per tick of the game clock (Super Mario Bros.' clock ticks every 24 frames)
CLOCK_FRAMES = 24

# Rewards, after gym-super-mario-bros 9.x: progress (pixels of new maximal x), minus one per
# clock tick, a stomp's 100 points / 100, death and completion.
DEATH_PENALTY = -25.0
COMPLETION_REWARD = 50.0
STOMP_REWARD = 1.0

# Level generation: safe flat runs at both ends, the flagpole near the end.
START_COLUMNS = 8
END_COLUMNS = 8
FLAG_OFFSET = 5
FEATURE_SPACING = 3
GAP_WIDTHS = (2, 3)
PIPE_WIDTH = 2
PIPE_HEIGHTS = (2, 3)
PLATFORM_WIDTHS = (3, 5)
PLATFORM_ROW = 10

# Colours, roughly the NES palette of world 1-1.
SKY = (92, 148, 252)
GROUND_COLOUR = (200, 76, 12)
GROUND_EDGE = (124, 44, 0)
BRICK_COLOUR = (228, 92, 16)
MORTAR = (60, 20, 0)
PIPE_COLOUR = (0, 168, 0)
PIPE_DARK = (0, 100, 0)
PIPE_LIGHT = (128, 216, 80)
POLE_COLOUR = (180, 180, 180)
FLAG_COLOUR = (0, 168, 0)
PLAYER_COLOUR = (216, 40, 0)
PLAYER_SKIN = (252, 188, 140)
ENEMY_COLOUR = (136, 68, 0)
ENEMY_FEET = (40, 20, 0)


def max_jump_height() -> float:
    """Pixels a jump from standing rises with A held (the apex of ``JUMP_SPEED`` under
    ``GRAVITY_HOLD``, simulated frame by frame)."""
    height, speed = 0.0, JUMP_SPEED
    while speed > 0:
        height += speed
        speed -= GRAVITY_HOLD
    return height


@dataclass(frozen=True)
class LevelLayout:
    """A level: the tile grid, the enemies' starting columns and the flagpole."""

    #: ``(15, length)`` uint8 tile codes (0 empty, 1 ground, 2 brick, 3 pipe)
    tiles: np.ndarray
    #: column of each enemy at the start (it stands on the ground there)
    enemy_columns: tuple[int, ...]
    #: column of the flagpole; touching it ends the level
    flag_column: int

    @property
    def length(self) -> int:
        """Columns of the level."""
        return int(self.tiles.shape[1])

    @property
    def flag_x(self) -> float:
        """Level x of the flagpole (the player touches it when its right edge reaches it)."""
        return float(self.flag_column * TILE + TILE // 2 - 1)

    def gap_columns(self) -> np.ndarray:
        """Columns without ground (falling there is death)."""
        return np.flatnonzero(self.tiles[GROUND_ROW] == EMPTY)


def generate_level(
    rng: np.random.Generator,
    length: int,
    gaps: int,
    pipes: int,
    platforms: int,
    enemies: int,
) -> LevelLayout:
    """Draw a level: ``gaps`` gaps (2-3 tiles wide), ``pipes`` pipes (2 wide, 2-3 high),
    ``platforms`` brick platforms (3-5 wide, four tiles up) and ``enemies`` enemies on the
    ground, in random order and spacing between a flat start and a flat end with the flagpole.

    Raises ``ValueError`` when the features do not fit in ``length`` columns.
    """
    first, last = START_COLUMNS, length - END_COLUMNS
    # Checked for the widest draw, so that whether a level fits never depends on its seed.
    widest = (
        gaps * (GAP_WIDTHS[1] + FEATURE_SPACING)
        + pipes * (PIPE_WIDTH + FEATURE_SPACING)
        + platforms * (PLATFORM_WIDTHS[1] + FEATURE_SPACING)
    )
    if widest > last - first:
        raise ValueError(
            f"length {length} is too short for {gaps} gaps, {pipes} pipes and {platforms} "
            f"platforms: they may need {widest + START_COLUMNS + END_COLUMNS} columns"
        )
    # An enemy needs a ground column not next to a gap or pipe (each blocks its width + 2).
    enemy_room = (last - first - 2) - gaps * (GAP_WIDTHS[1] + 2) - pipes * (PIPE_WIDTH + 2)
    if enemies > enemy_room:
        raise ValueError(
            f"length {length} with {gaps} gaps and {pipes} pipes leaves room for "
            f"{max(enemy_room, 0)} enemies, not {enemies}"
        )
    tiles = np.zeros((ROWS, length), dtype=np.uint8)
    tiles[GROUND_ROW:] = GROUND
    kinds = ["gap"] * gaps + ["pipe"] * pipes + ["platform"] * platforms
    order = rng.permutation(len(kinds)) if kinds else np.zeros(0, dtype=int)
    widths = []
    for index in order:
        kind = kinds[index]
        if kind == "gap":
            widths.append((kind, int(rng.integers(GAP_WIDTHS[0], GAP_WIDTHS[1] + 1))))
        elif kind == "pipe":
            widths.append((kind, PIPE_WIDTH))
        else:
            widths.append((kind, int(rng.integers(PLATFORM_WIDTHS[0], PLATFORM_WIDTHS[1] + 1))))
    needed = sum(width + FEATURE_SPACING for _, width in widths)
    # Spread the free columns over the spaces before each feature, at random.
    slack = last - first - needed
    cuts = np.sort(rng.integers(0, slack + 1, size=len(widths)))
    extra = np.diff(np.concatenate([[0], cuts]))
    column = first
    occupied = np.zeros(length, dtype=bool)
    for (kind, width), spacing in zip(widths, extra, strict=True):
        column += int(spacing) + FEATURE_SPACING
        span = slice(column, column + width)
        if kind == "gap":
            tiles[GROUND_ROW:, span] = EMPTY
        elif kind == "pipe":
            height = int(rng.integers(PIPE_HEIGHTS[0], PIPE_HEIGHTS[1] + 1))
            tiles[GROUND_ROW - height : GROUND_ROW, span] = PIPE
        else:
            tiles[PLATFORM_ROW, span] = BRICK
        if kind != "platform":
            occupied[span] = True
        column += width
    # Enemies stand on solid ground, away from the start, gaps, pipes and each other.
    free = [
        c
        for c in range(START_COLUMNS + 2, last)
        if not occupied[max(c - 1, 0) : c + 2].any() and tiles[GROUND_ROW, c] == GROUND
    ]
    assert enemies <= len(free), (enemies, len(free))  # guaranteed by enemy_room above
    enemy_columns = tuple(sorted(int(c) for c in rng.choice(free, size=enemies, replace=False)))
    flag_column = length - FLAG_OFFSET
    return LevelLayout(tiles=tiles, enemy_columns=enemy_columns, flag_column=flag_column)


@dataclass
class Body:
    """A moving box: the player or an enemy (left/top edge in level pixels)."""

    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    width: int = 16
    height: int = 16
    on_ground: bool = False
    #: enemies stay still until they come near the screen, as in Super Mario Bros.
    active: bool = True


@dataclass
class FrameOutcome:
    """What one frame did: its reward and its parts, and whether the level ended."""

    reward: float
    progress: float = 0.0
    time: float = 0.0
    stomp: float = 0.0
    death: float = 0.0
    completion: float = 0.0
    dead: bool = False
    flag_get: bool = False


class SideScrollerSim:
    """Plays one :class:`LevelLayout` frame by frame.

    ``time_limit`` is the clock at the start, in ticks of :data:`CLOCK_FRAMES` frames.
    """

    def __init__(self, layout: LevelLayout, time_limit: int) -> None:
        self.layout = layout
        self.time_limit = int(time_limit)
        self._background = _render_background(layout)
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """The player at the start, enemies at their columns, the clock full."""
        width, height = PLAYER_SIZE
        self.player = Body(START_X, GROUND_ROW * TILE - height, width=width, height=height)
        self.player.on_ground = True
        self.enemies = [
            Body(
                float(column * TILE),
                float(GROUND_ROW * TILE - ENEMY_SIZE[1]),
                vx=-ENEMY_SPEED,
                width=ENEMY_SIZE[0],
                height=ENEMY_SIZE[1],
                on_ground=True,
                active=False,
            )
            for column in self.layout.enemy_columns
        ]
        self.camera_x = 0
        self.frame = 0
        self.max_x = self.player.x
        self.stomps = 0
        self.dead = False
        self.flag_get = False
        self._a_held = False

    @property
    def time_left(self) -> int:
        """Clock ticks left (Super Mario Bros.' displayed time)."""
        return max(self.time_limit - self.frame // CLOCK_FRAMES, 0)

    @property
    def done(self) -> bool:
        """The level ended (death or flag)."""
        return self.dead or self.flag_get

    # -- one frame -----------------------------------------------------------------------

    def step(self, buttons: int) -> FrameOutcome:
        """Advance one frame with the controller byte ``buttons`` (see :data:`BUTTONS`)."""
        if self.done:
            raise RuntimeError("the level has ended; call reset() first")
        right = bool(buttons & BUTTONS["right"])
        left = bool(buttons & BUTTONS["left"])
        run = bool(buttons & BUTTONS["B"])
        jump = bool(buttons & BUTTONS["A"])
        player = self.player
        # Horizontal speed moves towards the pressed direction's target speed.
        direction = int(right) - int(left)
        if direction:
            target = direction * (RUN_SPEED if run else WALK_SPEED)
            step = ACCELERATION if abs(player.vx) <= abs(target) else DECELERATION
            player.vx = _approach(player.vx, target, step)
        else:
            player.vx = _approach(player.vx, 0.0, DECELERATION)
        # A new press of A on the ground jumps; holding A makes the rise last longer.
        if jump and not self._a_held and player.on_ground:
            player.vy = -JUMP_SPEED
            player.on_ground = False
        self._a_held = jump
        gravity = GRAVITY_HOLD if (jump and player.vy < 0) else GRAVITY
        player.vy = min(player.vy + gravity, MAX_FALL_SPEED)
        self._move(player)
        # The camera only scrolls right, and the player cannot leave it to the left.
        if player.x < self.camera_x:
            player.x, player.vx = float(self.camera_x), max(player.vx, 0.0)
        self.camera_x = int(
            min(
                max(self.camera_x, player.x + player.width / 2 - CAMERA_LEAD),
                self.layout.length * TILE - SCREEN_WIDTH,
            )
        )
        stomp = self._move_enemies()
        progress = 0.0
        if player.x > self.max_x:
            progress, self.max_x = player.x - self.max_x, player.x
        tick_before = self.frame // CLOCK_FRAMES
        self.frame += 1
        time = -float(self.frame // CLOCK_FRAMES - tick_before)
        if player.x + player.width >= self.layout.flag_x:
            self.flag_get = True
        if player.y >= SCREEN_HEIGHT or (self.time_left == 0 and not self.flag_get):
            self.dead = True
        completion = COMPLETION_REWARD if self.flag_get else 0.0
        death = DEATH_PENALTY if self.dead else 0.0
        return FrameOutcome(
            reward=progress + time + stomp + death + completion,
            progress=progress,
            time=time,
            stomp=stomp,
            death=death,
            completion=completion,
            dead=self.dead,
            flag_get=self.flag_get,
        )

    def _move_enemies(self) -> float:
        """Move the enemies, resolve contacts with the player; return the stomp reward."""
        player, reward = self.player, 0.0
        remaining = []
        for enemy in self.enemies:
            if not enemy.active:
                enemy.active = enemy.x < self.camera_x + SCREEN_WIDTH + TILE
            if enemy.active:
                enemy.vy = min(enemy.vy + GRAVITY, MAX_FALL_SPEED)
                speed = enemy.vx
                self._move(enemy)
                if enemy.vx == 0.0:  # walked into a wall: turn round
                    enemy.vx = -speed
            if enemy.y >= SCREEN_HEIGHT:
                continue  # fell into a gap
            if not self.dead and _overlap(player, enemy):
                # From above (falling, feet in the enemy's top half) it is a stomp.
                if player.vy > 0 and player.y + player.height - enemy.y <= enemy.height / 2:
                    player.vy = -STOMP_BOUNCE
                    self.stomps += 1
                    reward += STOMP_REWARD
                    continue
                self.dead = True
            remaining.append(enemy)
        self.enemies = remaining
        return reward

    def _move(self, body: Body) -> None:
        """Move ``body`` by its speed, x then y, stopping at solid tiles."""
        tiles = self.layout.tiles
        body.x += body.vx
        if body.vx != 0.0:
            top, bottom = _span(body.y, body.height)
            edge = body.x + body.width - 1e-6 if body.vx > 0 else body.x
            column = int(np.floor(edge / TILE))
            if any(_solid(tiles, row, column) for row in range(top, bottom + 1)):
                body.x = column * TILE - body.width if body.vx > 0 else (column + 1) * TILE
                body.vx = 0.0
        body.y += body.vy
        body.on_ground = False
        if body.vy != 0.0:
            first, last = _span(body.x, body.width)
            edge = body.y + body.height - 1e-6 if body.vy > 0 else body.y
            row = int(np.floor(edge / TILE))
            if any(_solid(tiles, row, column) for column in range(first, last + 1)):
                if body.vy > 0:
                    body.y = row * TILE - body.height
                    body.on_ground = True
                else:
                    body.y = (row + 1) * TILE
                body.vy = 0.0

    # -- rendering -----------------------------------------------------------------------

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """The screen as ``(240, 256, 3)`` uint8 RGB (written into ``out`` when given)."""
        if out is None:
            out = np.empty((SCREEN_HEIGHT, SCREEN_WIDTH, 3), dtype=np.uint8)
        out[:] = self._background[:, self.camera_x : self.camera_x + SCREEN_WIDTH]
        for enemy in self.enemies:
            self._draw(out, enemy, ENEMY_COLOUR)
            self._draw(out, enemy, ENEMY_FEET, top=enemy.height - 4)
        if not (self.dead and self.player.y >= SCREEN_HEIGHT):
            self._draw(out, self.player, PLAYER_COLOUR)
            self._draw(out, self.player, PLAYER_SKIN, top=2, bottom=7)
        return out

    def _draw(
        self,
        out: np.ndarray,
        body: Body,
        colour: tuple[int, int, int],
        top: int = 0,
        bottom: int | None = None,
    ) -> None:
        left = int(round(body.x)) - self.camera_x
        y0 = int(round(body.y)) + top
        y1 = int(round(body.y)) + (body.height if bottom is None else bottom)
        x0, x1 = max(left, 0), min(left + body.width, SCREEN_WIDTH)
        y0, y1 = max(y0, 0), min(y1, SCREEN_HEIGHT)
        if x0 < x1 and y0 < y1:
            out[y0:y1, x0:x1] = colour


def _approach(value: float, target: float, step: float) -> float:
    if value < target:
        return min(value + step, target)
    return max(value - step, target)


def _span(start: float, size: int) -> tuple[int, int]:
    """First and last tile index covered by ``[start, start + size)``."""
    return int(np.floor(start / TILE)), int(np.floor((start + size - 1e-6) / TILE))


def _solid(tiles: np.ndarray, row: int, column: int) -> bool:
    # The level's ends are walls; above and below the screen is open.
    if column < 0 or column >= tiles.shape[1]:
        return True
    if row < 0 or row >= tiles.shape[0]:
        return False
    return bool(SOLID[tiles[row, column]])


def _overlap(a: Body, b: Body) -> bool:
    return (
        a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    )


def _tile_sprites() -> dict[int, np.ndarray]:
    """16 x 16 RGB pictures of the tile kinds."""
    ground = np.empty((TILE, TILE, 3), dtype=np.uint8)
    ground[:] = GROUND_COLOUR
    ground[0, :] = ground[:, 0] = GROUND_EDGE
    brick = np.empty((TILE, TILE, 3), dtype=np.uint8)
    brick[:] = BRICK_COLOUR
    brick[[0, 7, 15], :] = MORTAR
    brick[0:7, 8] = brick[8:15, 0] = MORTAR
    pipe = np.empty((TILE, TILE, 3), dtype=np.uint8)
    pipe[:] = PIPE_COLOUR
    pipe[:, 2:4] = PIPE_LIGHT
    pipe[:, [0, 15]] = PIPE_DARK
    return {GROUND: ground, BRICK: brick, PIPE: pipe}


def _render_background(layout: LevelLayout) -> np.ndarray:
    """The whole level without moving things: ``(240, 16 * length, 3)`` uint8."""
    tiles = layout.tiles
    image = np.empty((SCREEN_HEIGHT, layout.length * TILE, 3), dtype=np.uint8)
    image[:] = SKY
    sprites = _tile_sprites()
    for row, column in zip(*np.nonzero(tiles), strict=True):
        image[row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE] = sprites[
            int(tiles[row, column])
        ]
    # A pipe's top row gets a dark rim, so pipes read as pipes after downscaling.
    above = np.vstack([np.zeros((1, layout.length), dtype=np.uint8), tiles[:-1]])
    pipe_tops = (tiles == PIPE) & (above != PIPE)
    for row, column in zip(*np.nonzero(pipe_tops), strict=True):
        image[row * TILE : row * TILE + 3, column * TILE : (column + 1) * TILE] = PIPE_DARK
    # The flagpole: a pole from row 3 down to the ground with a flag at its top.
    pole_x = int(layout.flag_x)
    image[3 * TILE : GROUND_ROW * TILE, pole_x - 1 : pole_x + 1] = POLE_COLOUR
    image[3 * TILE + 2 : 3 * TILE + 12, pole_x - 12 : pole_x - 1] = FLAG_COLOUR
    return image
