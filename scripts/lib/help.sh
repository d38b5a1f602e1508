# Sourced by the scripts in scripts/: `-h` or `--help` as the first argument prints the
# script's header comment (its usage) and exits, before the script does anything else.
#   source "$(dirname "$0")/lib/help.sh"; help_if_asked "$0" "$@"

# Prints a script's header comment: the comment lines after the #! line.
print_header() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
}

help_if_asked() {
  local script=$1
  shift
  case "${1:-}" in
    -h | --help)
      print_header "$script"
      exit 0
      ;;
  esac
}
