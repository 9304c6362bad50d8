# zsh -f test/complete-zsh.zsh SCRIPT LINE... : for each LINE, prints "LINE => match|match…", what zsh's
# completion offers at its end, run in an interactive zsh on a pseudo-terminal (zpty).
# Used by test/cli-completion.test.ts.
zmodload zsh/zpty
local line out i=0
local -a found
zpty z zsh -f -i
# Markers are split by quotes in what is typed, so that the terminal's echo of it never matches.
zpty -w z "PS1='ZP''ROMPT> '; autoload -U compinit && compinit -u -D && source ${(q)1}"
# Every match added goes through compadd: print them before adding.
zpty -w z 'compadd() { local -a hits; builtin compadd -A hits "$@"; (( $#hits )) && print -r -- "<<${(j:|:)hits}>>"; builtin compadd "$@"; }'
zpty -w z "zstyle ':completion:*' menu no; bindkey '^I' complete-word; print -r -- RE''ADY"
zpty -r z out '*READY*ZPROMPT> ' # the set-up lines' echo and output are read and dropped
for line in "${@[2,-1]}"; do
  (( i++ ))
  # Typed only at a prompt: typed while a command runs, the terminal (not yet in zle's raw
  # mode) would take ^U as its own kill character and drop the line before zle sees it.
  zpty -w -n z "$line"$'\t\C-u'
  zpty -w z "print -r -- END''$i"
  out=''
  zpty -r z out "*END$i*ZPROMPT> "
  found=()
  while [[ $out =~ '<<([^>]*)>>' ]]; do
    found+=(${(s:|:)match[1]})
    out=${out[$((MEND + 1)),-1]}
  done
  print -r -- "$line => ${(j:|:)${(@ou)found}}"
done
zpty -d z
