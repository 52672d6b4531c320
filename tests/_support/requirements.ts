/**
 * Tests that need a program a machine may lack (Redis, Chromium). Outside CI they are
 * skipped, with one line saying what was skipped and how to install what is missing, so
 * the test command passes on a machine with nothing but Deno. In CI (`CI` set) they are
 * required: they run, and fail loudly when the program is missing.
 */

const ci = (Deno.env.get("CI") ?? "").trim().toLowerCase();

/** Whether the tests run in CI: `CI` is set to anything but empty, `0` or `false`. */
export const IN_CI: boolean = ci !== "" && ci !== "0" && ci !== "false";

const warned = new Set<string>();

/**
 * The `ignore` flag of tests that need something: false when it is `available` or in CI
 * (the tests run, and fail without it), true otherwise, after one line on stderr (once
 * per `what`) naming what is skipped, what is missing and how to install it.
 */
export function skipUnless(
  available: boolean,
  what: { tests: string; missing: string; install: string },
): boolean {
  if (available || IN_CI) return false;
  if (!warned.has(what.tests)) {
    warned.add(what.tests);
    console.warn(
      `SKIPPED ${what.tests}: ${what.missing} (install: ${what.install}; with CI set they run and fail)`,
    );
  }
  return true;
}

/** Whether `program` is a path to an executable file or the name of one on the `PATH`. */
export function installed(program: string): boolean {
  const candidates = program.includes("/")
    ? [program]
    : (Deno.env.get("PATH") ?? "").split(":").filter(Boolean).map((dir) => `${dir}/${program}`);
  return candidates.some((path) => {
    try {
      const info = Deno.statSync(path);
      return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
    } catch {
      return false;
    }
  });
}
