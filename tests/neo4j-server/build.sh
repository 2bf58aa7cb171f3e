#!/usr/bin/env bash
# Builds the test Neo4j server (target/neo4j-test-server.jar + target/lib/) unless it is up to date.
#
# Exit 127 when java or mvn is missing and a build is needed (the pytest fixture relies on that).
# Up to date = a stamp written after the last successful build is newer than pom.xml, this script and
# every file under src/. A stamp is used rather than the jar's mtime because Maven leaves an unchanged
# jar alone, which would make every later call rebuild. A lock serialises concurrent callers (parallel
# pytest workers, CI). Extra Maven flags can be passed in MVN_ARGS, e.g. MVN_ARGS=-Dmaven.repo.local=DIR.
# Prints NEO4J_TEST_SERVER_JAR=<absolute path> as its last stdout line; Maven's output goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="$here/target"
jar="$target/neo4j-test-server.jar"
stamp="$target/.build-stamp"

mkdir -p "$target"
exec 9>"$target/.build.lock"
flock 9

up_to_date() {
    [[ -f "$stamp" && -f "$jar" && -d "$target/lib" ]] || return 1
    [[ -z "$(find "$here/pom.xml" "$here/build.sh" "$here/src" -newer "$stamp" -print -quit)" ]]
}

if up_to_date; then
    echo "build.sh: up to date" >&2
else
    for tool in java mvn; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "build.sh: '$tool' not found; install OpenJDK 17 and Maven" \
                "(apt-get install openjdk-17-jdk-headless maven)" >&2
            exit 127
        fi
    done
    echo "build.sh: building the Neo4j test server with Maven" >&2
    rm -rf "$target/lib" "$stamp"
    # shellcheck disable=SC2086  # MVN_ARGS is a list of flags on purpose.
    (cd "$here" && mvn -q -B ${MVN_ARGS:-} package -DskipTests) >&2
    touch "$stamp"
fi

echo "NEO4J_TEST_SERVER_JAR=$jar"
